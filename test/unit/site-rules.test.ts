// The site rules file, judged by `berth submit-check` at submit and by berthd at the prolog
// with the same functions: what pyxis users write every day (/var/lib, /etc/hostname, /etc,
// /proc), a symbolic link into a denied prefix, a registry the site does not list, user
// mounts turned off. Each refusal names the value, the rule and the file.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { applyUserOptions } from '../../services/agent/containers/user-options';
import { ConfigError, loadConfig } from '../../services/agent/config';
import { BerthError } from '../../services/shared/errors';
import { loadSiteRules, parseSiteRules, type SiteRules, SiteRulesError } from '../../services/shared/site-rules';
import { runSubmitCheck } from '../../services/shared/submit-check';
import { runSiteRules } from '../../services/cli/site-rules';

const REPO = path.join(import.meta.dirname, '..', '..');
const tmp = (name: string): string => {
  const d = mkdtempSync(path.join(os.tmpdir(), `berth-site-${name}-`));
  chmodSync(d, 0o755);
  return d;
};
function siteFile(body: Record<string, unknown>): string {
  const f = path.join(tmp('file'), 'site.json');
  writeFileSync(f, JSON.stringify(body), { mode: 0o644 });
  return f;
}
const ALICE = { uid: 4242, gids: [4242] };
// a pinned image in a registry that has every digest (resolve.ts checks a pinned one too)
const REGISTRY = { resolveDigest: async () => 'sha256:' + 'c'.repeat(64), checkAccess: async () => undefined };
const PINNED = '127.0.0.1:1/team/app@sha256:' + 'c'.repeat(64);
const SITE_IMAGE = 'registry.hpc.example.org:5000/team/app@sha256:' + 'c'.repeat(64);

async function submit(env: Record<string, string>, rules: SiteRules | undefined): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runSubmitCheck(env, (s) => (out += s), (s) => (err += s), { who: ALICE, resolve: { client: REGISTRY }, ...(rules ? { siteRules: rules } : {}) });
  return { code, out, err };
}

/** berthd's verdict on the same mounts at the prolog */
function atProlog(rules: SiteRules, mounts: { source: string; target: string; readOnly: boolean }[]): string {
  try {
    applyUserOptions('7', { mounts, workdir: '', envNames: [], name: '' }, { ...ALICE, home: '' }, '', { site: rules, ownPaths: [] });
    return '';
  } catch (err) {
    assert.ok(err instanceof BerthError && err.code === 'MOUNT_REFUSED', String(err));
    return err.message;
  }
}

describe('the shipped site rules (scripts/examples/site.json), at submit', () => {
  const file = path.join(REPO, 'scripts', 'examples', 'site.json');
  const rules = loadSiteRules(file);

  it('refuses the mounts pyxis users write every day, naming the value, the prefix and the rule', async () => {
    const cases: [string, RegExp][] = [
      ['/etc:/x', new RegExp(`^berth: --container-mounts=/etc:/x: the source /etc is under /etc, which this site does not let jobs mount \\(site rules ${file}, userMounts\\.deniedPrefixes\\)\\n$`)],
      ['/var/lib', new RegExp(`^berth: --container-mounts=/var/lib: the source /var/lib is under /var/lib, which this site does not let jobs mount \\(site rules ${file}, userMounts\\.deniedPrefixes\\)\\n$`)],
      ['/etc/hostname', /^berth: --container-mounts=\/etc\/hostname: the source \/etc\/hostname is under \/etc, which this site does not let jobs mount/],
      ['/var:/host-var', new RegExp(`--container-mounts=/var:/host-var: the source /var holds /var/lib, which this site does not let jobs mount \\(site rules ${file}, userMounts\\.deniedPrefixes\\)`)],
      ['/proc:/host-proc', /--container-mounts=\/proc:\/host-proc: the source \/proc is under \/proc, which this site does not let jobs mount/],
      ['/proc', /--container-mounts entry '\/proc': the target \/proc is under \/proc, which berth or the kernel provides/],
      ['/', /the target \/ is the root of the container/],
    ];
    for (const [mounts, re] of cases) {
      const r = await submit({ BERTH_CONTAINER_IMAGE: SITE_IMAGE, BERTH_CONTAINER_MOUNTS: mounts }, rules);
      assert.equal(r.code, 1, mounts);
      assert.equal(r.out, '', `${mounts}: nothing for the prolog`);
      assert.match(r.err, re, mounts);
    }
  });

  it('judges a symbolic link by where it leads', async () => {
    const home = tmp('home');
    symlinkSync('/etc/ssh', path.join(home, 'cfg'));
    const r = await submit({ BERTH_CONTAINER_IMAGE: SITE_IMAGE, BERTH_CONTAINER_MOUNTS: `${home}/cfg:/cfg:ro` }, rules);
    assert.equal(r.code, 1);
    assert.equal(r.err, `berth: --container-mounts=${home}/cfg:/cfg:ro: the source ${home}/cfg (really /etc/ssh) is under /etc, which this site does not let jobs mount (site rules ${file}, userMounts.deniedPrefixes)\n`);
  });

  it('refuses an image from a registry the site does not list, before asking any registry', async () => {
    const r = await submit({ BERTH_CONTAINER_IMAGE: 'ghcr.io/someone/tool:1' }, rules);
    assert.equal(r.code, 1);
    assert.equal(r.err, `berth: --container-image=ghcr.io/someone/tool:1: the registry ghcr.io is not one this site lets jobs use (site rules ${file}, registries: registry.hpc.example.org:5000); use an image from one of those\n`);
    const hub = await submit({ BERTH_CONTAINER_IMAGE: 'ubuntu:22.04' }, rules);
    assert.match(hub.err, /the registry docker\.io is not one this site lets jobs use/);
  });
});

describe('site rules of a site that turns user mounts off', () => {
  const file = siteFile({ userMounts: { enabled: false }, registries: ['127.0.0.1:1'] });
  const rules = loadSiteRules(file);

  it('refuses every --container-mounts at submit, naming the key, and lets the rest through', async () => {
    const open = tmp('open');
    const r = await submit({ BERTH_CONTAINER_IMAGE: PINNED, BERTH_CONTAINER_MOUNTS: `${open}:/data` }, rules);
    assert.equal(r.code, 1);
    assert.equal(r.err, `berth: --container-mounts=${open}:/data: this site does not let jobs mount host paths (site rules ${file}, userMounts.enabled is false); ask your site for the directories you need\n`);
    const ok = await submit({ BERTH_CONTAINER_IMAGE: PINNED, BERTH_CONTAINER_WORKDIR: '/w' }, rules);
    assert.deepEqual([ok.code, ok.err], [0, '']);
    assert.match(ok.out, /^BERTH_CONTAINER_IMAGE=127\.0\.0\.1:1\/team\/app@sha256:c{64}\n/);
  });
});

describe('submit and prolog apply one set of rules', () => {
  const open = tmp('data');
  mkdirSync(path.join(open, 'in'));
  chmodSync(path.join(open, 'in'), 0o755);
  const file = siteFile({
    mounts: [{ source: '/scratch', target: '/scratch' }],
    userMounts: { deniedPrefixes: ['/proc', '/sys', '/dev', '/etc', open + '/secret'] },
    protectedPaths: ['/var/lib/berth'],
  });
  const rules = loadSiteRules(file);

  it('gives the same verdict, word for word, at submit and in berthd', async () => {
    const cases: { source: string; target: string; readOnly: boolean }[] = [
      { source: '/etc', target: '/x', readOnly: false },
      { source: '/var', target: '/v', readOnly: true },
      { source: open, target: '/d', readOnly: false },
      { source: path.join(open, 'in'), target: '/scratch', readOnly: false },
      { source: '/no/such/dir', target: '/n', readOnly: false },
    ];
    for (const m of cases) {
      const text = `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`;
      const r = await submit({ BERTH_CONTAINER_IMAGE: PINNED, BERTH_CONTAINER_MOUNTS: text }, rules);
      const prolog = atProlog(rules, [m]);
      assert.notEqual(prolog, '', `${text} is refused by berthd`);
      assert.equal(r.code, 1, `${text} is refused at submit too`);
      assert.equal(r.err, `berth: ${prolog.replace(/^job 7: /, '')}\n`, text);
    }
    assert.match(atProlog(rules, [cases[2]!]), new RegExp(`the source ${open} holds ${open}/secret`));
    assert.match(atProlog(rules, [cases[3]!]), new RegExp(`the target /scratch is where every job gets the site mount /scratch \\(site rules ${file}, mounts\\.0\\)`));
    const fine = { source: path.join(open, 'in'), target: '/in', readOnly: true };
    assert.equal(atProlog(rules, [fine]), '');
    const r = await submit({ BERTH_CONTAINER_IMAGE: PINNED, BERTH_CONTAINER_MOUNTS: `${fine.source}:/in:ro` }, rules);
    assert.deepEqual([r.code, r.err], [0, '']);
  });
});

describe('the site rules file', () => {
  it('names every bad key, and refuses a file that is missing rather than guessing', async () => {
    const bad = siteFile({ mounts: [{ source: 'scratch', target: '/s' }, { source: '/a', target: '/s' }], userMounts: { enabled: 'yes' }, registries: ['http://x'], extra: 1 });
    assert.throws(() => loadSiteRules(bad), (e: unknown) => {
      assert.ok(e instanceof SiteRulesError);
      for (const line of ['mounts.0.source: must be an absolute path', 'userMounts.enabled: Expected boolean', "Unrecognized key(s) in object: 'extra'", 'registries.0: must be a registry host[:port]']) {
        assert.ok(e.message.includes(`${bad}: ${line}`) || e.message.includes(line), `${line} in:\n${e.message}`);
      }
      return true;
    });
    assert.throws(() => loadSiteRules('/nonexistent/site.json'), /the site rules file \/nonexistent\/site\.json does not exist; install it on every compute and login node/);
    let err = '';
    const code = await runSubmitCheck({ BERTH_CONTAINER_IMAGE: PINNED }, () => undefined, (s) => (err += s), { who: ALICE, siteRulesFile: '/nonexistent/site.json' });
    assert.equal(code, 1);
    assert.equal(err, "berth: container jobs cannot be checked on this host (tell your site's admins): the site rules file /nonexistent/site.json does not exist; install it on every compute and login node (docs/install.md, section 4)\n");
    assert.throws(() => parseSiteRules('{"mounts":[{"source":"/a","target":"/a"},{"source":"/b","target":"/a"}]}', 'f'), /f: mounts\.1\.target: \/a is already the target of mounts\.0/);
  });

  it('has the same sha256 however it is read: berthd\'s status and berth site-rules print it', () => {
    const file = siteFile({ registries: ['127.0.0.1:5000'] });
    const rules = loadSiteRules(file);
    assert.match(rules.sha256, /^[0-9a-f]{64}$/);
    let out = '';
    assert.equal(runSiteRules(file, false, (s) => (out += s), () => undefined), 0);
    assert.match(out, new RegExp(`^sha256 +${rules.sha256} +\\(berth status shows its first 12 digits as RULES: ${rules.sha256.slice(0, 12)}\\)$`, 'm'));
    assert.match(out, /^registries +127\.0\.0\.1:5000$/m);
    let err = '';
    assert.equal(runSiteRules('/nonexistent/site.json', false, () => undefined, (s) => (err += s)), 1);
    assert.match(err, /does not exist/);
  });

  it("berthd.json: the keys that moved to the site rules say where they went", () => {
    const f = path.join(tmp('berthd'), 'berthd.json');
    writeFileSync(f, JSON.stringify({ mounts: [], authz: { policyFile: '/p.json', registries: ['r:5000'] } }));
    assert.throws(() => loadConfig(f, {}), (e: unknown) => e instanceof ConfigError
      && e.message.includes(`${f}: mounts: has moved to the site rules file (/etc/berth/site.json, key mounts), which berth submit-check reads too`)
      && e.message.includes(`${f}: authz.registries: has moved to the site rules file (/etc/berth/site.json, key registries)`));
    assert.equal(loadConfig(undefined, {}).siteRules, '/etc/berth/site.json');
  });
});
