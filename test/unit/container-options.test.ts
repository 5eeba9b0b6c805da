import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { formatMounts, OptionError, optionsFromEnv, optionsToEnv, parseContainerName, parseEnvNames, parseMounts, parseToggle, parseWorkdir } from '../../services/shared/container-options';
import { reachablePath } from '../../services/shared/path-access';
import { applyUserOptions, type UserOptionRules } from '../../services/agent/containers/user-options';
import { buildJobContainerSpec, userTmpfsOptions, userTmpfsProblem } from '../../services/agent/containers/job-container-spec';
import { stepEnv } from '../../services/agent/steps/step-env';
import { prologueRequest, stepEpilogueRequest, stepPrologueRequest } from '../../services/cli/hook';
import { runSubmitCheck, WRITABLE_WARNING } from '../../services/shared/submit-check';
import { BerthError } from '../../services/shared/errors';
import { builtinSiteRules } from '../../services/shared/site-rules';

describe('--container-mounts', () => {
  it('reads SRC, SRC:DST and SRC:DST:ro, normalising trailing slashes', () => {
    assert.deepEqual(parseMounts('/scratch, /data/in/:/in:ro,/a:/b:rw'), [
      { source: '/scratch', target: '/scratch', readOnly: false },
      { source: '/data/in', target: '/in', readOnly: true },
      { source: '/a', target: '/b', readOnly: false },
    ]);
    assert.deepEqual(parseMounts(''), []);
  });

  it('refuses relative paths, dot-dot, unknown flags, empty entries and reserved or repeated targets, saying how to fix it', () => {
    const bad: [string, RegExp][] = [
      ['scratch:/s', /mount source 'scratch' is not an absolute path; write it from \//],
      ['/a/../etc:/x', /contains '\.' or '\.\.'/],
      ['/a:/b:rx', /unknown flag 'rx'; berth takes ro, rw, private, rprivate, slave, rslave, joined with '\+'/],
      ['/a:/b,,/c', /empty entry/],
      ['/a:/b:ro:x', /too many ':'/],
      ['/a:/proc/x', /under \/proc, which berth or the kernel provides/],
      ['/a:/', /the root of the container/],
      ['/a:/etc/passwd', /\/etc\/passwd/],
      ['/a:/d,/b:/d', /two things at \/d/],
    ];
    for (const [text, re] of bad) assert.throws(() => parseMounts(text), (e: unknown) => e instanceof OptionError && re.test(e.message), text);
  });
});

describe("pyxis's --container-mounts forms", () => {
  it("takes a source that starts with '.' from the directory the submit runs in, as pyxis does", () => {
    assert.deepEqual(parseMounts('./:/m,./in/data.txt:/d.txt:ro,../up:/u', '/home/alice/run'), [
      { source: '/home/alice/run', target: '/m', readOnly: false },
      { source: '/home/alice/run/in/data.txt', target: '/d.txt', readOnly: true },
      { source: '/home/alice/up', target: '/u', readOnly: false },
    ]);
    assert.throws(() => parseMounts('./in:/m'), /mount source '\.\/in' is not an absolute path/, 'without the directory (the prolog, berthd) only absolute sources');
    assert.throws(() => parseMounts('in:/m', '/home/alice'), /mount source 'in' is not an absolute path/, "pyxis too takes only ./ and ../ as relative");
    assert.throws(() => parseMounts('./in', '/home/alice'), /mount target '\.\/in' is not an absolute path/, 'a relative target is not taken');
  });

  it("takes flags joined with '+': ro or rw and a propagation that keeps mounts off the host", () => {
    assert.deepEqual(parseMounts('/a:/b:ro+rprivate,/c:/d:rslave+rw,/e:/f:slave+rbind,/g:/h:private'), [
      { source: '/a', target: '/b', readOnly: true, propagation: 'rprivate' },
      { source: '/c', target: '/d', readOnly: false, propagation: 'rslave' },
      { source: '/e', target: '/f', readOnly: false, propagation: 'slave' },
      { source: '/g', target: '/h', readOnly: false, propagation: 'private' },
    ]);
    assert.equal(formatMounts(parseMounts('/a:/b:ro+rprivate,/c:/d')), '/a:/b:ro+rprivate,/c:/d');
  });

  it('takes tmpfs:DST as a tmpfs at DST, ro or rw; nosuid and nodev are what it always is', () => {
    assert.deepEqual(parseMounts('tmpfs:/scratch,tmpfs:/fast:rw+nosuid+nodev'), [
      { source: 'tmpfs', target: '/scratch', readOnly: false },
      { source: 'tmpfs', target: '/fast', readOnly: false },
    ]);
    assert.throws(() => parseMounts('tmpfs'), /a tmpfs needs the directory it goes at, e\.g\. tmpfs:\/scratch/);
    assert.throws(() => parseMounts('tmpfs:/x:rslave'), /'rslave' applies to a bind, not a tmpfs/);
  });

  it("takes a tmpfs's own options that dockerd takes (size=, nr_inodes=, mode=), in one order, and refuses the rest saying why", () => {
    assert.deepEqual(parseMounts('tmpfs:/m:nr_inodes=1k,tmpfs:/s:mode=0700+ro+size=64m+nr_inodes=10k'), [
      { source: 'tmpfs', target: '/m', readOnly: false, tmpfsOptions: ['nr_inodes=1k'] },
      { source: 'tmpfs', target: '/s', readOnly: true, tmpfsOptions: ['size=64m', 'nr_inodes=10k', 'mode=0700'] },
    ]);
    assert.equal(formatMounts(parseMounts('tmpfs:/s:mode=0700+ro+size=64m')), 'tmpfs:/s:ro+size=64m+mode=0700');
    const bad: [string, RegExp][] = [
      ['tmpfs:/mytmpfs:huge=within_size', /'huge=within_size': dockerd makes berth's tmpfs mounts and takes no huge= for them \(only size=, nr_inodes= and mode=\); leave it out/],
      ['tmpfs:/t:mpol=local', /'mpol=local': a tmpfs of a job keeps the node's memory policy/],
      ['tmpfs:/t:size=50%', /'size=50%': size is bytes with k, m or g/],
      ['tmpfs:/t:size=0', /size is bytes/],
      ['tmpfs:/t:uid=0', /a tmpfs of a job is always its user's; leave uid= out/],
      ['tmpfs:/t:nr_blocks=1', /unknown tmpfs option 'nr_blocks=1'; a tmpfs takes ro, rw, size=, nr_inodes=, mode=/],
      ['tmpfs:/t:size=1m+size=2m', /gives size= twice/],
      ['/a:/b:size=1m', /KEY=VALUE options are for a tmpfs/],
    ];
    for (const [text, re] of bad) assert.throws(() => parseMounts(text), (e: unknown) => e instanceof OptionError && re.test(e.message), text);
  });

  it("gives a tmpfs the size asked for within the job's memory, and says so when it is more", () => {
    const m = { readOnly: false, tmpfsOptions: ['size=64m', 'nr_inodes=1k', 'mode=0700'] };
    assert.equal(userTmpfsOptions(m, 4242, 4243, 1024 ** 3), 'rw,nosuid,nodev,exec,size=64m,nr_inodes=1k,mode=0700,uid=4242,gid=4243');
    assert.equal(userTmpfsOptions({ readOnly: true }, 1, 2, 1000), 'ro,nosuid,nodev,exec,size=1000,mode=0755,uid=1,gid=2');
    assert.equal(userTmpfsProblem(m, 64 * 1024 ** 2), undefined);
    assert.match(userTmpfsProblem(m, 64 * 1024 ** 2 - 1) ?? '', /^size=64m is more than the job's memory on this node, 67108863 bytes; ask for less, or give the job more memory \(--mem\)/);
    assert.match(userTmpfsProblem({ tmpfsOptions: ['size=2g'] }, 0) ?? '', /more than 1073741824 bytes, a tmpfs's size in a job without a memory limit/);
  });

  it('refuses shared propagation, which would carry mounts onto the host, and what Docker cannot do, saying what to use instead', () => {
    const bad: [string, RegExp][] = [
      ['/a:/b:rshared', /'rshared': shared propagation would carry mounts made in the container onto the host, which no job may do; use rslave/],
      ['/a:/b:ro+shared', /'shared': shared propagation/],
      ['/a:/b:unbindable', /Docker cannot make a bind unbindable/],
      ['/a:/b:runbindable', /Docker cannot make a bind unbindable/],
      ['/a:/b:bind', /non-recursive bind is not available/],
      ['/a:/b:nosuid', /no-new-privileges/],
      ['/a:/b:ro+', /empty flag/],
      ['/a:/b:ro+rw', /both ro and rw/],
      ['/a:/b:slave+private', /two propagations \(slave, private\)/],
      ['tmpfs:/proc/x', /under \/proc/],
    ];
    for (const [text, re] of bad) assert.throws(() => parseMounts(text), (e: unknown) => e instanceof OptionError && re.test(e.message), text);
  });
});

describe("pyxis's --container-name flags", () => {
  it('takes NAME:auto (the default), :create, :exec and :no_exec', () => {
    assert.deepEqual(parseContainerName('box:auto'), { name: 'box' });
    assert.deepEqual(parseContainerName('box:create'), { name: 'box', flag: 'create' });
    assert.deepEqual(parseContainerName('box:exec'), { name: 'box', flag: 'exec' });
    assert.deepEqual(parseContainerName('box:no_exec'), { name: 'box', flag: 'no_exec' });
    assert.deepEqual(parseContainerName('42.0'), { name: '42.0' });
    const o = optionsFromEnv({ BERTH_CONTAINER_NAME: 'box:exec' });
    assert.equal(o.name, 'box');
    assert.equal(o.nameFlag, 'exec');
    assert.equal(optionsToEnv(o).BERTH_CONTAINER_NAME, 'box:exec');
  });

  it('refuses other flags, naming the four; no_create, which pyxis does not have, points at :exec', () => {
    assert.throws(() => parseContainerName('box:join'), /unknown flag 'join'; the flag is one of auto .*create .*exec .*no_exec/);
    assert.throws(() => parseContainerName('box:no_create'), /pyxis has no no_create: to only join a container that exists, use :exec/);
    assert.throws(() => parseContainerName('box:'), /unknown flag ''/);
    assert.throws(() => parseContainerName(':exec'), /not a valid name/);
  });
});

describe('the other options', () => {
  it('checks workdir, env names, container names and yes/no values', () => {
    assert.equal(parseWorkdir('/work/'), '/work');
    // pyxis changes directory once in the container, where it starts in /: a relative path is from there
    assert.equal(parseWorkdir('work'), '/work');
    assert.equal(parseWorkdir('../'), '/');
    assert.equal(parseWorkdir('/a/./b/../c'), '/a/c');
    assert.throws(() => parseWorkdir('/a\nb'), /NUL or newline/);
    assert.deepEqual(parseEnvNames('OMP_NUM_THREADS, MY_VAR,OMP_NUM_THREADS'), ['OMP_NUM_THREADS', 'MY_VAR']);
    assert.throws(() => parseEnvNames('A=1'), /'A=1' is not an environment variable name/);
    assert.deepEqual(parseContainerName('train-1.a'), { name: 'train-1.a' });
    assert.throws(() => parseContainerName('-x'), /not a valid name/);
    assert.throws(() => parseContainerName('a/b'), /not a valid name/);
    assert.equal(parseToggle('yes', 'X'), true);
    assert.equal(parseToggle('0', 'X'), false);
    assert.equal(parseToggle('', 'X'), undefined);
    assert.throws(() => parseToggle('maybe', 'BERTH_CONTAINER_READONLY'), /BERTH_CONTAINER_READONLY='maybe' is not a yes\/no value/);
  });

  it('round-trips through the BERTH_CONTAINER_* variables the plugin and the prolog use', () => {
    const o = { mounts: [{ source: '/s', target: '/t', readOnly: true }], workdir: '/w', envNames: ['A', 'B'], name: 'n', mountHome: false, readOnly: true };
    const env = optionsToEnv(o);
    assert.deepEqual(env, { BERTH_CONTAINER_MOUNTS: '/s:/t:ro', BERTH_CONTAINER_WORKDIR: '/w', BERTH_CONTAINER_ENV: 'A,B', BERTH_CONTAINER_NAME: 'n', BERTH_CONTAINER_MOUNT_HOME: '0', BERTH_CONTAINER_READONLY: '1' });
    assert.deepEqual(optionsFromEnv(Object.fromEntries(Object.entries(env).map(([k, v]) => ['SPANK_' + k, v])), 'SPANK_'), o);
  });

  it('reach the prolog request from the SPANK_ variables', () => {
    const req = prologueRequest({
      SLURM_JOB_ID: '7', SLURM_JOB_UID: '1000', SLURM_JOB_GID: '1000', SPANK_BERTH_CONTAINER_IMAGE: 'r/i@sha256:' + 'a'.repeat(64),
      SPANK_BERTH_CONTAINER_MOUNTS: '/data:/in:ro', SPANK_BERTH_CONTAINER_WORKDIR: '/in', SPANK_BERTH_CONTAINER_ENV: 'FOO',
      SPANK_BERTH_CONTAINER_NAME: 'box', SPANK_BERTH_CONTAINER_MOUNT_HOME: '0',
    });
    assert.deepEqual(req.options, {
      mounts: [{ source: '/data', target: '/in', readOnly: true, propagation: '', tmpfsOptions: [] }], workdir: '/in', envNames: ['FOO'], name: 'box', nameFlag: '', mountHome: 'TOGGLE_OFF', readOnly: 'TOGGLE_UNSPECIFIED', unshare: [],
    });
  });
});

describe('mount sources the user can reach', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-reach-'));
  chmodSync(dir, 0o755);
  const open = path.join(dir, 'open');
  const closed = path.join(dir, 'closed');
  mkdirSync(path.join(closed, 'inner'), { recursive: true });
  mkdirSync(open, { recursive: true });
  chmodSync(open, 0o755);
  chmodSync(closed, 0o700);
  chmodSync(path.join(closed, 'inner'), 0o755);
  writeFileSync(path.join(open, 'secret'), 'x', { mode: 0o600 });
  symlinkSync(path.join(closed, 'inner'), path.join(open, 'link'));
  const alice = { uid: 4242, gids: [4242] };

  it('gives the real path of a directory everyone may enter', () => {
    assert.equal(reachablePath(open + '/', alice), open);
  });

  it('refuses what is below a directory the user may not enter, also through a symbolic link', () => {
    assert.throws(() => reachablePath(path.join(closed, 'inner'), alice), /may not enter .*closed \(mode 700\)/);
    assert.throws(() => reachablePath(path.join(open, 'link'), alice), /may not enter .*closed/);
  });

  it('refuses a file the user may not read, and a path that does not exist', () => {
    assert.throws(() => reachablePath(path.join(open, 'secret'), alice), /not readable by uid 4242 \(mode 600/);
    assert.throws(() => reachablePath(path.join(open, 'nope'), alice), /does not exist: .*nope; create it first/);
  });

  const rules: UserOptionRules = {
    site: builtinSiteRules({ userMounts: { enabled: true, deniedPrefixes: ['/proc', '/etc'] }, protectedPaths: ['/var/lib/berth'], mounts: [{ source: '/scratch', target: '/scratch' }] }),
    ownPaths: [],
  };
  const opts = (over: object) => ({ mounts: [], workdir: '', envNames: [], name: '', ...over });
  const refused = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof BerthError && e.code === 'MOUNT_REFUSED' && re.test(e.message));

  it('applies the site defaults: home mounted unless the user says not', () => {
    const a = applyUserOptions('9', undefined, { ...alice, home: open }, '', rules);
    assert.deepEqual(a.mounts, [{ source: open, target: open, readOnly: false }]);
    assert.equal(a.readOnly, false);
    const b = applyUserOptions('9', opts({ mountHome: false, readOnly: true }), { ...alice, home: open }, '', rules);
    assert.deepEqual(b.mounts, []);
    assert.equal(b.readOnly, true);
  });

  it("refuses denied prefixes, berth's directories, taken targets and everything when turned off", () => {
    const who = { ...alice, home: '' };
    refused(() => applyUserOptions('9', opts({ mounts: [{ source: '/etc', target: '/x', readOnly: true }] }), who, '', rules),
      /^job 9: --container-mounts=\/etc:\/x:ro: the source \/etc is under \/etc, which this site does not let jobs mount \(berth's built-in site rules, userMounts\.deniedPrefixes\)$/);
    refused(() => applyUserOptions('9', opts({ mounts: [{ source: '/var', target: '/x', readOnly: true }] }), who, '', rules), /the source \/var holds \/var\/lib\/berth, which this site does not let jobs mount \(berth's built-in site rules, protectedPaths\)/);
    refused(() => applyUserOptions('9', opts({ mounts: [{ source: open, target: '/scratch', readOnly: true }] }), who, '', rules), /the target \/scratch is where every job gets the site mount \/scratch \(berth's built-in site rules, mounts\.0\)/);
    refused(() => applyUserOptions('9', opts({ mounts: [{ source: path.join(closed, 'inner'), target: '/x', readOnly: true }] }), who, '', rules), /^job 9: --container-mounts=.*:\/x:ro: the source .* may not enter/);
    refused(() => applyUserOptions('9', opts({ mounts: [{ source: open, target: '/x', readOnly: true }] }), who, '', { ...rules, site: builtinSiteRules({ userMounts: { enabled: false } }) }), /this site does not let jobs mount host paths \(berth's built-in site rules, userMounts\.enabled is false\)/);
    refused(() => applyUserOptions('9', opts({ mounts: [{ source: open, target: '/x' }] }), who, '', { ...rules, ownPaths: [{ path: dir, source: "berthd's stateDir on n1" }] }), /is under .*, which this site does not let jobs mount \(berthd's stateDir on n1\)/);
  });

  it("lets a mount of the user's at the job's working directory replace that directory's bind", () => {
    const a = applyUserOptions('9', opts({ mounts: [{ source: open, target: '/work/job', readOnly: false }] }), { ...alice, home: '' }, '/work/job', rules);
    assert.deepEqual(a.mounts, [{ source: open, target: '/work/job', readOnly: false }]);
    const s = buildJobContainerSpec({
      identity: { jobId: '9', node: 'n1', uid: 4242, gid: 4242, user: 'a', imageRef: 'r/i:1', imageDigest: 'r/i@sha256:' + 'a'.repeat(64), workDir: '/work/job', startTime: '' },
      image: 'r/i', supplementaryGids: [], cpus: 0, memoryBytes: 0, devices: [], mounts: [], initBinary: '/i', memlockBytes: -1,
      userFiles: { passwd: '/p', group: '/g' }, userMounts: a.mounts,
    });
    const binds = (s.body.HostConfig as { Binds: string[] }).Binds.filter((b) => b.split(':')[1] === '/work/job');
    assert.deepEqual(binds, [`${open}:/work/job`], 'one bind at the working directory, the user\'s');
  });

  it('puts the checked mounts, read-only root, tmpfs and workdir into the container body', () => {
    // '..' after a link is resolved as the kernel (and so dockerd) would: to the closed directory
    refused(() => applyUserOptions('9', opts({ mounts: [{ source: open + '/link/..', target: '/in', readOnly: true }] }), { ...alice, home: '' }, '', rules), /link\/\.\. \(.*closed\) is not readable by uid 4242 \(mode 700/);
    const s = buildJobContainerSpec({
      identity: { jobId: '9', node: 'n1', uid: 4242, gid: 4242, user: 'a', imageRef: 'r/i:1', imageDigest: 'r/i@sha256:' + 'a'.repeat(64), workDir: '', startTime: '' },
      image: 'r/i', supplementaryGids: [], cpus: 0, memoryBytes: 0, devices: [], mounts: [], initBinary: '/i', memlockBytes: -1,
      userFiles: { passwd: '/p', group: '/g' }, userMounts: [{ source: open, target: '/in', readOnly: true }], readOnly: true, workingDir: '/in',
    });
    const hc = s.body.HostConfig as Record<string, unknown>;
    assert.ok((hc.Binds as string[]).includes(`${open}:/in:ro`));
    assert.equal(hc.ReadonlyRootfs, true);
    assert.deepEqual(hc.Tmpfs, { '/tmp': 'rw,nosuid,nodev,mode=1777' });
    assert.equal(s.body.WorkingDir, '/in');
  });
});

describe('--container-env in steps', () => {
  it('forwards the named host variables, over the defaults, and nothing else', () => {
    const env = stepEnv(['FOO=1', 'BAR=2', 'HOME=/custom', 'SLURM_PROCID=3'], { name: 'alice', home: '/home/alice' }, ['FOO', 'HOME']);
    assert.ok(env.includes('FOO=1'));
    assert.ok(!env.some((e) => e.startsWith('BAR=')));
    assert.ok(env.includes('HOME=/custom'));
    assert.ok(!env.includes('HOME=/home/alice'));
    assert.ok(env.includes('SLURM_PROCID=3'));
  });
});

/** berth submit-check as uid 4242 with the built-in site rules, against a registry that has every digest (submit checks a pinned one too: resolve.test.ts) */
async function submitCheck(env: Record<string, string>, cwd?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const client = { resolveDigest: async () => 'sha256:' + 'b'.repeat(64), checkAccess: async () => undefined };
  const code = await runSubmitCheck(env, (s) => (out += s), (s) => (err += s), { who: { uid: 4242, gids: [4242] }, siteRules: builtinSiteRules(), resolve: { client }, ...(cwd ? { cwd } : {}) });
  return { code, out, err };
}

describe('berth submit-check', () => {
  const run = submitCheck;
  const digest = '127.0.0.1:1/team/app@sha256:' + 'b'.repeat(64);

  it('prints the pinned image and the normalised options as NAME=VALUE lines', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-sc-'));
    chmodSync(tmp, 0o755);
    const r = await run({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: `${tmp}/:/in:ro`, BERTH_CONTAINER_READONLY: 'yes', BERTH_CONTAINER_ENV: 'X' });
    assert.equal(r.err, '');
    assert.equal(r.code, 0);
    assert.deepEqual(r.out.trim().split('\n'), [
      `BERTH_CONTAINER_IMAGE=${digest}`, `BERTH_CONTAINER_IMAGE_REQUESTED=${digest}`,
      `BERTH_CONTAINER_MOUNTS=${tmp}:/in:ro`, 'BERTH_CONTAINER_ENV=X', 'BERTH_CONTAINER_READONLY=1', 'BERTH_CONTAINER_BATCH=1',
    ]);
  });

  it("writes a relative mount source as the directory the submit runs in holds it, and a relative workdir from the container's /", async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-sc-'));
    chmodSync(tmp, 0o755);
    mkdirSync(path.join(tmp, 'in'), { mode: 0o755 });
    writeFileSync(path.join(tmp, 'in', 'a.txt'), 'a\n', { mode: 0o644 });
    const r = await run({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: './:/m,./a.txt:/a.txt:ro', BERTH_CONTAINER_WORKDIR: '../' }, path.join(tmp, 'in'));
    assert.equal(r.err, '');
    const lines = r.out.trim().split('\n');
    assert.ok(lines.includes(`BERTH_CONTAINER_MOUNTS=${tmp}/in:/m,${tmp}/in/a.txt:/a.txt:ro`), r.out);
    assert.ok(lines.includes('BERTH_CONTAINER_WORKDIR=/'), r.out);
    // berthd answering an in-job srun's check has a directory of its own: the plugin's BERTH_SUBMIT_CWD says the srun's
    const told = await run({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: './a.txt:/a.txt', BERTH_SUBMIT_CWD: path.join(tmp, 'in') });
    assert.ok(told.out.split('\n').includes(`BERTH_CONTAINER_MOUNTS=${tmp}/in/a.txt:/a.txt`), told.err);
    const untold = await run({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: './a.txt:/a.txt' });
    assert.match(untold.err, /mount source '\.\/a\.txt' is not an absolute path/, 'with no directory given, none is guessed');
    const missing = await run({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: './nothing:/m' }, tmp);
    assert.equal(missing.code, 1);
    assert.match(missing.err, new RegExp(`the source path does not exist: ${tmp}/nothing`));
  });

  it("writes where the batch script runs for every job: the container (pyxis's default, --container-batch), or the host (--no-container-batch)", async () => {
    const batch = async (env: Record<string, string>) => (await run({ BERTH_CONTAINER_IMAGE: digest, ...env })).out.split('\n').filter((l) => l.startsWith('BERTH_CONTAINER_BATCH='));
    assert.deepEqual(await batch({}), ['BERTH_CONTAINER_BATCH=1']);
    assert.deepEqual(await batch({ BERTH_CONTAINER_BATCH: '1' }), ['BERTH_CONTAINER_BATCH=1']);
    assert.deepEqual(await batch({ BERTH_CONTAINER_BATCH: '0' }), ['BERTH_CONTAINER_BATCH=0']);
    const alone = await run({ BERTH_CONTAINER_BATCH: '0' });
    assert.deepEqual(alone, { code: 0, out: '', err: '' }, '--no-container-batch without an image asks for nothing');
    const needs = await run({ BERTH_CONTAINER_BATCH: '1' });
    assert.equal(needs.code, 1);
    assert.match(needs.err, /--container-batch .*need --container-image/);
  });

  it('fails with one reason for a bad value, a source out of reach, or options without an image', async () => {
    const a = await run({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: 'rel:/x' });
    assert.deepEqual([a.code, a.out], [1, '']);
    assert.match(a.err, /^berth: mount source 'rel' is not an absolute path/);
    const b = await run({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: '/no/such/dir:/x' });
    assert.match(b.err, /--container-mounts=\/no\/such\/dir:\/x: the source path does not exist: \/no\/such\/dir;/);
    const c = await run({ BERTH_CONTAINER_MOUNTS: '/tmp:/x' });
    assert.equal(c.code, 1);
    assert.match(c.err, /need --container-image \(or BERTH_CONTAINER_IMAGE\)/);
    const d = await run({});
    assert.deepEqual(d, { code: 0, out: '', err: '' });
  });
});

describe('berth submit-check, for scripts written for pyxis', () => {
  const run = submitCheck;
  it('says what --container-writable gives, and what to do to install software, without failing the job', async () => {
    const image = '127.0.0.1:1/team/app:1';
    // (the plugin hands PYXIS_CONTAINER_WRITABLE=1 on as BERTH_CONTAINER_READONLY=0)
    const r = await run({ BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_READONLY: '0' });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.out.split('\n').filter((l) => l.startsWith('berth: warning: ')), [WRITABLE_WARNING]);
    assert.match(r.out, /^BERTH_CONTAINER_READONLY=0$/m);
    assert.match(WRITABLE_WARNING, /files and directories stay root's.*pip install --user.*--container-mounts.*docker build/);
    for (const env of [{}, { BERTH_CONTAINER_READONLY: '1' }] as Record<string, string>[]) {
      assert.doesNotMatch((await run({ BERTH_CONTAINER_IMAGE: image, ...env })).out, /warning/, 'the default and read-only say nothing');
    }
  });
  it("pins enroot's image forms as Docker references, keeping what the user wrote", async () => {
    const r = await run({ BERTH_CONTAINER_IMAGE: 'docker://127.0.0.1:1#team/app:1' });
    assert.equal(r.err, '');
    assert.deepEqual(r.out.trim().split('\n'), [`BERTH_CONTAINER_IMAGE=127.0.0.1:1/team/app@sha256:${'b'.repeat(64)}`, 'BERTH_CONTAINER_IMAGE_REQUESTED=docker://127.0.0.1:1#team/app:1', 'BERTH_CONTAINER_BATCH=1']);
    const sq = await run({ BERTH_CONTAINER_IMAGE: './app.sqsh' });
    assert.equal(sq.code, 1);
    assert.match(sq.err, /is a file: berth runs Docker images from a registry, not squashfs files/);
  });
  it('refuses --container-remap-root and --container-entrypoint, saying why and what to do; takes their no- forms', async () => {
    const image = '127.0.0.1:1/team/app:1';
    const root = await run({ BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_REMAP_ROOT: '1' });
    assert.equal(root.code, 1);
    assert.match(root.err, /^berth: --container-remap-root \(PYXIS_CONTAINER_REMAP_ROOT=1\): berth runs your containers as you \(uid 4242\), never as root inside them/);
    assert.match(root.err, /build it into the image where you are root \(docker build/);
    const ep = await run({ BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_ENTRYPOINT: '1' });
    assert.equal(ep.code, 1);
    assert.match(ep.err, /--container-entrypoint \(PYXIS_CONTAINER_ENTRYPOINT=1\): berth does not run the image's ENTRYPOINT/);
    const no = await run({ BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_REMAP_ROOT: '0', BERTH_CONTAINER_ENTRYPOINT: '0', BERTH_CONTAINER_ENTRYPOINT_LOG: '1' });
    assert.equal(no.err, '');
    assert.equal(no.code, 0);
    assert.doesNotMatch(no.out, /REMAP|ENTRYPOINT/, 'nothing of them reaches the job');
    const bad = await run({ BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_REMAP_ROOT: 'perhaps' });
    assert.match(bad.err, /BERTH_CONTAINER_REMAP_ROOT='perhaps' is not a yes\/no value/);
  });
  it('refuses the malformed values pyxis refuses', async () => {
    const image = '127.0.0.1:1/team/app:1';
    const m = await run({ BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_MOUNTS: '/tmp:' });
    assert.equal(m.code, 1);
    assert.match(m.err, /--container-mounts entry '\/tmp:' has nothing after ':'/);
    const e = await run({ BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_ENV: 'FOO,' });
    assert.equal(e.code, 1);
    assert.match(e.err, /--container-env 'FOO,' has an empty name/);
  });
});

describe("berth submit-check with pyxis's mount and name flags", () => {
  const digest = '127.0.0.1:1/team/app@sha256:' + 'b'.repeat(64);
  it('passes ro+rprivate and tmpfs on, and refuses rshared and :exec for a new job with the reason and what to do', async () => {
    const ok = await submitCheck({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: '/tmp:/in:ro+rprivate,tmpfs:/scratch', BERTH_CONTAINER_NAME: 'box:create' });
    assert.equal(ok.err, '');
    assert.match(ok.out, /^BERTH_CONTAINER_MOUNTS=\/tmp:\/in:ro\+rprivate,tmpfs:\/scratch$/m);
    assert.match(ok.out, /^BERTH_CONTAINER_NAME=box:create$/m);
    const shared = await submitCheck({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_MOUNTS: '/tmp:/in:rshared' });
    assert.equal(shared.code, 1);
    assert.match(shared.err, /^berth: --container-mounts entry '\/tmp:\/in:rshared': 'rshared': shared propagation would carry mounts made in the container onto the host, which no job may do; use rslave/);
    const exec = await submitCheck({ BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_NAME: 'box:exec' });
    assert.equal(exec.code, 1);
    assert.match(exec.err, /box:exec joins a container that exists, and a new job has none yet; drop :exec here/);
    let out = '';
    assert.equal(await runSubmitCheck({ SLURM_JOB_ID: '12', BERTH_CONTAINER_NAME: 'box:exec' }, (s) => (out += s), () => undefined, { who: { uid: 4242, gids: [4242] } }), 0);
    assert.equal(out, 'BERTH_CONTAINER_NAME=box:exec\n', 'inside a job, :exec reaches the step');
    // an sbatch from inside a job makes a new job: the plugin says so, whatever SLURM_JOB_ID says
    const nested = await submitCheck({ SLURM_JOB_ID: '12', BERTH_SUBMIT_FOR: 'job', BERTH_CONTAINER_IMAGE: digest, BERTH_CONTAINER_NAME: 'box:exec' });
    assert.equal(nested.code, 1);
    assert.match(nested.err, /a new job has none yet/);
  });
});

describe('berth submit-check inside a job', () => {
  it('lets srun --container-name alone through, to join a container the job has', async () => {
    let out = '';
    let err = '';
    const code = await runSubmitCheck({ SLURM_JOB_ID: '12', BERTH_CONTAINER_NAME: 'box', BERTH_CONTAINER_WORKDIR: '/w' }, (s) => (out += s), (s) => (err += s), { who: { uid: 4242, gids: [4242] } });
    assert.deepEqual({ code, out, err }, { code: 0, out: 'BERTH_CONTAINER_WORKDIR=/w\nBERTH_CONTAINER_NAME=box\n', err: '' });
    const outside = await runSubmitCheck({ BERTH_CONTAINER_NAME: 'box' }, () => undefined, (s) => (err += s), { who: { uid: 4242, gids: [4242] } });
    assert.equal(outside, 1);
  });
});

describe('the step hooks of native container steps', () => {
  it("decode slurmstepd's wait status for the step's accounting", () => {
    const env = { SLURM_JOB_ID: '9', SLURM_STEP_ID: '2' };
    assert.deepEqual(stepEpilogueRequest({ ...env, BERTH_STEP_WAIT_STATUS: String(3 << 8) }), { jobId: '9', stepId: '2', hasStatus: true, exitCode: 3, signal: '' });
    assert.deepEqual(stepEpilogueRequest({ ...env, BERTH_STEP_WAIT_STATUS: '9' }), { jobId: '9', stepId: '2', hasStatus: true, exitCode: 137, signal: 'SIGKILL' });
    assert.deepEqual(stepEpilogueRequest({ ...env, BERTH_STEP_WAIT_STATUS: '' }), { jobId: '9', stepId: '2', hasStatus: false, exitCode: 0, signal: '' });
  });

  it('split the command the plugin joined with the unit separator', () => {
    assert.deepEqual(stepPrologueRequest({ BERTH_STEP_ARGV: 'sh\x1f-c\x1fecho a b\x1f' }).argv, ['sh', '-c', 'echo a b', '']);
    assert.deepEqual(stepPrologueRequest({}).argv, []);
  });
});
