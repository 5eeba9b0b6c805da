// berthd's SubmitCheck (agent/submit/submit-checker.ts) answers as `berth submit-check` run by
// the user does: the CLI's check runs here in a process of the user's own (nobody), berthd's
// as root for a caller of that uid, over one table of inputs, against a registry on loopback;
// both answers must be the same, byte for byte. Paths below a directory the user may not
// enter, and links there, are where root's own reach would answer otherwise.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NssIdentityResolver } from '../../services/agent/identity/nss';
import { checkedEnv, SubmitChecker } from '../../services/agent/submit/submit-checker';
import { loadSiteRules } from '../../services/shared/site-rules';

const REPO = path.join(import.meta.dirname, '..', '..');
const NOBODY = 65534;
const NOGROUP = 65534;
const DIGEST = 'sha256:' + 'a'.repeat(64);

/** the CLI's answers, in a process of uid NOBODY */
function asUser(siteRulesFile: string, cases: Record<string, string>[]): Promise<{ code: number; out: string; err: string }[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/support/submit-check-process.ts')], {
      cwd: REPO, uid: NOBODY, gid: NOGROUP, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the CLI's check as uid ${NOBODY} exited ${code}: ${err}`))));
    child.stdin.end(JSON.stringify({ siteRulesFile, cases }));
  });
}

/** berthd's checker in a process of uid UID */
function checkerAs(uid: number, input: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/support/submit-checker-process.ts')], {
      cwd: REPO, uid, gid: NOGROUP, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the checker as uid ${uid} exited ${code}: ${err}`))));
    child.stdin.end(JSON.stringify(input));
  });
}

describe('SubmitCheck answers as berth submit-check run by the user', { skip: process.getuid?.() !== 0 ? 'needs root (runs the CLI as another user)' : false }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-submitrpc-'));
  const open = path.join(dir, 'open');
  const closed = path.join(dir, 'closed');
  let registry: http.Server;
  let host = '';
  let siteRulesFile = '';

  before(async () => {
    chmodSync(dir, 0o755);
    mkdirSync(path.join(open, 'data'), { recursive: true, mode: 0o755 });
    mkdirSync(path.join(closed, 'inner'), { recursive: true });
    chmodSync(open, 0o755);
    chmodSync(closed, 0o700);
    chmodSync(path.join(closed, 'inner'), 0o755);
    writeFileSync(path.join(open, 'secret'), 'x', { mode: 0o600 });
    symlinkSync(path.join(closed, 'inner'), path.join(open, 'to-closed'));
    // a link the user cannot reach, to a place they can: root would follow it
    symlinkSync(path.join(open, 'data'), path.join(closed, 'to-open'));
    registry = http.createServer((req, res) => {
      const known = req.url === '/v2/team/app/manifests/1' || req.url === `/v2/team/app/manifests/${DIGEST}`;
      res.writeHead(known ? 200 : 404, known ? { 'Docker-Content-Digest': DIGEST } : {}).end();
    });
    await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(registry.address() as AddressInfo).port}`;
    siteRulesFile = path.join(dir, 'site.json');
    writeFileSync(siteRulesFile, JSON.stringify({ mounts: [], userMounts: { enabled: true, deniedPrefixes: ['/proc', '/etc'] }, protectedPaths: ['/run/berth'], registries: [host, '127.0.0.1:1'] }), { mode: 0o644 });
  });
  after(() => {
    registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const img = (): string => `${host}/team/app:1`;
  const cases = (): [string, Record<string, string>][] => [
    ['a valid image', { BERTH_CONTAINER_IMAGE: img(), BERTH_SUBMIT_FOR: 'step', SLURM_JOB_ID: '7' }],
    ['a valid image with a readable mount, workdir and writable', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: `${open}/data:/data:ro`, BERTH_CONTAINER_WORKDIR: '/data', BERTH_CONTAINER_WRITABLE: '1', BERTH_SUBMIT_FOR: 'job' }],
    ['an image pinned already', { BERTH_CONTAINER_IMAGE: `${host}/team/app@${DIGEST}`, BERTH_SUBMIT_FOR: 'step' }],
    ['enroot\'s REGISTRY#IMAGE form', { BERTH_CONTAINER_IMAGE: `${host}#team/app:1`, BERTH_SUBMIT_FOR: 'step' }],
    ['a missing image', { BERTH_CONTAINER_IMAGE: `${host}/team/nope:1`, BERTH_SUBMIT_FOR: 'step' }],
    ['an image of a registry the site does not list', { BERTH_CONTAINER_IMAGE: '127.0.0.2:5000/team/app:1', BERTH_SUBMIT_FOR: 'step' }],
    ['a malformed image', { BERTH_CONTAINER_IMAGE: 'Team/App', BERTH_SUBMIT_FOR: 'step' }],
    ['bad mount syntax', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: 'relative/path:/x', BERTH_SUBMIT_FOR: 'step' }],
    ['a mount source below a directory the user may not enter', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: `${closed}/inner:/x`, BERTH_SUBMIT_FOR: 'step' }],
    ['a link to there', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: `${open}/to-closed:/x`, BERTH_SUBMIT_FOR: 'step' }],
    ['a link the user cannot reach, to a readable place', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: `${closed}/to-open:/x`, BERTH_SUBMIT_FOR: 'step' }],
    ['a file the user may not read', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: `${open}/secret:/x`, BERTH_SUBMIT_FOR: 'step' }],
    ['a mount source that does not exist', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: `${open}/nope:/x`, BERTH_SUBMIT_FOR: 'step' }],
    ['a denied prefix', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: '/etc:/x', BERTH_SUBMIT_FOR: 'step' }],
    ['the home mounted explicitly (nobody\'s does not exist)', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNT_HOME: '1', BERTH_SUBMIT_FOR: 'step' }],
    ['--container-name=NAME in a job', { BERTH_CONTAINER_NAME: 'c1', BERTH_SUBMIT_FOR: 'step', SLURM_JOB_ID: '7' }],
    ['--container-name=NAME:exec in a job', { BERTH_CONTAINER_NAME: 'c1:exec', BERTH_SUBMIT_FOR: 'step' }],
    ['--container-name=NAME:exec for a new job', { BERTH_CONTAINER_NAME: 'c1:exec', BERTH_SUBMIT_FOR: 'job' }],
    ['--container-name with an image', { BERTH_CONTAINER_NAME: 'c1:create', BERTH_CONTAINER_IMAGE: img(), BERTH_SUBMIT_FOR: 'step' }],
    ['a bad --container-name flag', { BERTH_CONTAINER_NAME: 'c1:sideways', BERTH_SUBMIT_FOR: 'step' }],
    ['options without an image', { BERTH_CONTAINER_WORKDIR: '/x', BERTH_SUBMIT_FOR: 'job' }],
    ['--container-remap-root', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_REMAP_ROOT: '1', BERTH_SUBMIT_FOR: 'step' }],
    ['--container-save at a step', { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_SAVE: `${host}/nobody/x:1`, BERTH_SUBMIT_FOR: 'step' }],
    ['a site-credentialed registry', { BERTH_CONTAINER_IMAGE: '127.0.0.1:1/team/app:1', BERTH_SITE_REGISTRIES: '127.0.0.1:1', BERTH_SUBMIT_FOR: 'step' }],
    ['nothing asked', { BERTH_SUBMIT_FOR: 'step' }],
  ];

  it('gives the same exit code, stdout and stderr for every input of the table', async () => {
    const table = cases();
    const cli = await asUser(siteRulesFile, table.map(([, env]) => env));
    const berthd = new SubmitChecker({ identities: new NssIdentityResolver(), siteRules: () => loadSiteRules(siteRulesFile) });
    for (const [i, [name, env]] of table.entries()) {
      const got = await berthd.check({ kind: 'user', uid: NOBODY, gid: NOGROUP }, Object.entries(env).map(([n, value]) => ({ name: n, value })));
      assert.deepEqual({ code: got.exitCode, out: got.stdout, err: got.stderr }, cli[i], name);
    }
    // the table means something: it holds refusals, pinned images and both kinds of path refusal
    assert.ok(cli.some((r) => r.code === 0 && r.out.includes(`@${DIGEST}`)), 'an image was pinned');
    assert.ok(cli.some((r) => /cannot be reached by uid 65534/.test(r.err)), 'a path refused on the way');
    assert.ok(cli.some((r) => /not readable by uid 65534/.test(r.err)), 'a file refused');
  });

  it('refuses to answer (NOT_SERVED_ON_NODE, so the user\'s own command does) where berthd itself may not look', async () => {
    // berthd as nobody, answering for daemon (uid 1) about daemon's private directory: as root on a root-squashed home
    const own = path.join(dir, 'daemons');
    mkdirSync(path.join(own, 'data'), { recursive: true });
    chownSync(own, 1, 1);
    chownSync(path.join(own, 'data'), 1, 1);
    chmodSync(own, 0o700);
    const got = await checkerAs(NOBODY, { siteRulesFile, caller: { kind: 'user', uid: 1, gid: 1 }, env: { BERTH_CONTAINER_IMAGE: img(), BERTH_CONTAINER_MOUNTS: `${own}/data:/x`, BERTH_SUBMIT_FOR: 'step' } });
    assert.equal(got.code, 'NOT_SERVED_ON_NODE', JSON.stringify(got));
    assert.match(String(got.error), /cannot be looked at by uid 65534 itself .*berth submit-check checks this as you/);
  });

  it("answers a root caller as root's own check: the same paths, root's home", async () => {
    const berthd = new SubmitChecker({ identities: new NssIdentityResolver(), siteRules: () => loadSiteRules(siteRulesFile) });
    const got = await berthd.check({ kind: 'root' }, [{ name: 'BERTH_CONTAINER_IMAGE', value: img() }, { name: 'BERTH_CONTAINER_MOUNTS', value: `${closed}/inner:/x` }, { name: 'BERTH_SUBMIT_FOR', value: 'step' }]);
    assert.equal(got.exitCode, 0, got.stderr);
    assert.match(got.stdout, new RegExp(`BERTH_CONTAINER_MOUNTS=${closed}/inner:/x`));
  });
});

describe('SubmitCheck request variables', () => {
  it('passes on only the names a submit check reads', () => {
    assert.deepEqual(checkedEnv([{ name: 'BERTH_CONTAINER_IMAGE', value: 'a' }, { name: 'PYXIS_CONTAINER_IMAGE', value: '1' }, { name: 'SLURM_JOB_ID', value: '3' }, { name: 'LD_PRELOAD', value: 'x' }, { name: 'HOME', value: '/root' }]),
      { BERTH_CONTAINER_IMAGE: 'a', PYXIS_CONTAINER_IMAGE: '1', SLURM_JOB_ID: '3' });
  });
  it('refuses a request larger than a submit check can be', () => {
    assert.throws(() => checkedEnv(Array.from({ length: 300 }, (_, i) => ({ name: `BERTH_X${i}`, value: '' }))), /300 variables/);
    assert.throws(() => checkedEnv([{ name: 'BERTH_CONTAINER_IMAGE', value: 'x'.repeat(70_000) }]), /longer than/);
  });
});
