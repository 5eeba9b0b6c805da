// The files a site installs berth with (scripts/examples, scripts/systemd, scripts/install.sh,
// docs/install.md) checked against the code that reads them: berthd's own config loader and
// policy loader, the TLS file names berthd writes for dockerd, the SPANK plugin's argument
// parser, and, where they exist on the machine, dockerd, systemd-analyze and logrotate.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import type { z } from 'zod';
import { DockerAccess } from '../../services/agent/authz/docker-access';
import { rewriteRequest } from '../../services/agent/authz/job-docker-endpoint';
import { NodeCertificateAuthority } from '../../services/agent/certs/node-ca';
import { type AgentConfig, configSchema, loadConfig } from '../../services/agent/config';
import { checkNode, type NodeFs } from '../../services/agent/admin/node-check';
import { silentLogger } from '../../services/agent/logger';
import { SitePolicy } from '../../services/agent/policy/site-policy';
import { loadSiteRules, parseSiteRules, type SiteRules, siteRulesSchema } from '../../services/shared/site-rules';
import { DockerRequest } from '../../services/agent/docker-request/request';

const REPO = path.join(import.meta.dirname, '..', '..');
const EXAMPLES = path.join(REPO, 'scripts', 'examples');
const SYSTEMD = path.join(REPO, 'scripts', 'systemd');
const read = (...p: string[]): string => readFileSync(path.join(...p), 'utf8');
const tmp = (name: string): string => mkdtempSync(path.join(os.tmpdir(), `berth-install-${name}-`));

/** systemd unit text → [section, key, value] in file order (comments and blank lines dropped) */
function unitEntries(text: string): [string, string, string][] {
  let section = '';
  const out: [string, string, string][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = line.match(/^\[(.+)\]$/);
    if (s) { section = s[1]!; continue; }
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a unit file line: ${line}`);
    out.push([section, line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return out;
}
const values = (e: [string, string, string][], section: string, key: string): string[] =>
  e.filter(([s, k]) => s === section && k === key).map(([, , v]) => v);
const words = (e: [string, string, string][], section: string, key: string): string[] =>
  values(e, section, key).flatMap((v) => v.split(/\s+/)).filter(Boolean);

/** slurm.conf-style KEY=VALUE lines (comments dropped) */
function confLines(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a KEY=VALUE line: ${line}`);
    m.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return m;
}

/** the plugstack.conf line: `required PATH ARG...` */
function plugstackLine(text: string): { kind: string; plugin: string; args: Map<string, string> } {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.equal(lines.length, 1, 'one plugin line');
  const [kind, plugin, ...args] = lines[0]!.split(/\s+/);
  return { kind: kind!, plugin: plugin!, args: new Map(args.map((a) => [a.slice(0, a.indexOf('=') + 1), a.slice(a.indexOf('=') + 1)])) };
}

/** logrotate stanzas: "PATTERN... {" directives "}" */
function logrotateStanzas(text: string): { patterns: string[]; directives: string[] }[] {
  const body = text.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
  return [...body.matchAll(/([^{}]+)\{([^}]*)\}/g)].map((m) => ({
    patterns: m[1]!.trim().split(/\s+/),
    directives: m[2]!.split('\n').map((l) => l.trim()).filter(Boolean),
  }));
}
const globMatches = (pattern: string, file: string): boolean =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`).test(file);

/** the zod object under a (possibly defaulted, optional or refined) schema; undefined if not an object */
function objectShape(t: z.ZodTypeAny): Record<string, z.ZodTypeAny> | undefined {
  let cur: z.ZodTypeAny = t;
  for (;;) {
    const def = cur._def as { innerType?: z.ZodTypeAny; schema?: z.ZodTypeAny; shape?: () => Record<string, z.ZodTypeAny> };
    if (def.shape) return def.shape();
    if (def.innerType) cur = def.innerType;
    else if (def.schema) cur = def.schema;
    else return undefined;
  }
}

function fencedBlocks(md: string, info: string): string[] {
  // fences may be indented (inside list items): the closing one has the same indentation
  return [...md.matchAll(/^( *)```([^\n]*)\n([\s\S]*?)^\1```$/gm)].filter((m) => m[2]!.trim() === info).map((m) => m[3]!);
}

const example = (): AgentConfig => loadConfig(path.join(EXAMPLES, 'berthd.json'), {});
const exampleRules = (): SiteRules => loadSiteRules(path.join(EXAMPLES, 'site.json'));
const exampleRaw = (): Record<string, unknown> => JSON.parse(read(EXAMPLES, 'berthd.json')) as Record<string, unknown>;
const daemonJson = (): Record<string, unknown> => JSON.parse(read(EXAMPLES, 'daemon.json')) as Record<string, unknown>;

// scripts/install.sh, run for real into a temporary PREFIX (not /usr/local, so that the
// /usr/local → PREFIX rewriting is exercised) from a copy of the repository with stand-in
// build outputs, and with --systemd into a temporary unit directory
let PREFIX = '';
let UNIT_DIR = '';
/** what install.sh printed, its closing hint included */
let INSTALL_OUT = '';
let INSTALL_OUT_PLAIN = '';
before(() => {
  const root = tmp('prefix');
  const fake = path.join(root, 'repo');
  for (const p of ['scripts/install.sh', 'scripts/slurm', 'scripts/systemd', 'scripts/examples', 'policies', 'docs']) {
    cpSync(path.join(REPO, p), path.join(fake, p), { recursive: true });
  }
  mkdirSync(path.join(fake, 'dist'), { recursive: true });
  mkdirSync(path.join(fake, 'build', 'native'), { recursive: true });
  for (const f of ['dist/berth.js', 'dist/berthd.js', 'build/native/berth_spank.so', 'build/native/berth-init', 'build/native/berth-hook']) writeFileSync(path.join(fake, f), '// stand-in\n');
  PREFIX = path.join(root, 'opt', 'berth');
  UNIT_DIR = path.join(root, 'units');
  const r = spawnSync('bash', [path.join(fake, 'scripts', 'install.sh'), '--systemd', PREFIX], {
    env: { ...process.env, NODE: process.execPath, SYSTEMD_UNIT_DIR: UNIT_DIR }, encoding: 'utf8',
  });
  assert.equal(r.status, 0, `install.sh failed:\n${r.stderr}`);
  INSTALL_OUT = r.stdout;
  const plain = spawnSync('bash', [path.join(fake, 'scripts', 'install.sh'), path.join(root, 'login')], { env: { ...process.env, NODE: process.execPath }, encoding: 'utf8' });
  assert.equal(plain.status, 0, plain.stderr);
  INSTALL_OUT_PLAIN = plain.stdout;
});

describe('example berthd.json', () => {
  it('passes berthd\'s own loader with every optional section on, the node name left to the host name', () => {
    const raw = exampleRaw();
    assert.equal('node' in raw, false, 'one file for every node: the node name comes from the host name');
    const c = example();
    assert.equal(c.node, os.hostname().split('.')[0]);
    for (const k of ['siteRules', 'rdmaDevices', 'authz', 'registryCredentialsFile', 'mirrors', 'imageGc', 'accountingRotation', 'metrics',
      'remoteAccess', 'taskProlog', 'slurmdSpoolDir', 'logFile']) {
      assert.ok(k in raw, `the production example shows ${k}`);
    }
    assert.ok(c.authz && c.remoteAccess && c.metrics);
    assert.ok(Object.keys(c.remoteAccess.clients).length > 0);
  });

  it('names the shipped policy, which loads with the example\'s registries and mirrors', () => {
    const c = example();
    assert.equal(path.dirname(c.authz!.policyFile), '/usr/local/lib/berth/policies');
    const shipped = path.join(REPO, 'policies', path.basename(c.authz!.policyFile));
    assert.ok(existsSync(shipped), `${shipped} is what install.sh installs as ${c.authz!.policyFile}`);
    const policy = new SitePolicy(shipped, silentLogger(), { registries: [...exampleRules().registries, ...Object.values(c.mirrors).flat()] });
    policy.load();
    policy.close();
  });

  it('installed under another PREFIX, names the files install.sh put there', () => {
    const c = loadConfig(path.join(PREFIX, 'share', 'berth', 'examples', 'berthd.json'), {});
    for (const [key, file] of [['initBinary', c.initBinary], ['taskProlog', c.taskProlog], ['authz.policyFile', c.authz!.policyFile]] as const) {
      assert.ok(file.startsWith(PREFIX + '/'), `${key} ${file} follows PREFIX`);
      assert.ok(existsSync(file), `${key}: install.sh installed ${file}`);
    }
  });
});

describe('example site.json', () => {
  it('passes the loader berthd and berth submit-check share, shows every key, and is where berthd.json looks', () => {
    const raw = JSON.parse(read(EXAMPLES, 'site.json')) as Record<string, unknown>;
    for (const k of Object.keys(siteRulesSchema._def.schema.shape)) assert.ok(k in raw, `the example shows ${k}`);
    const r = exampleRules();
    assert.deepEqual(r.mounts, [], 'a fresh machine has no /scratch: the example has no site mounts, the doc shows how to add them');
    assert.ok(r.registries.length > 0, 'the shipped policy pulls nothing without registries');
    assert.equal(example().siteRules, '/etc/berth/site.json');
    for (const p of ['/etc', '/var/lib', '/proc']) assert.ok(r.userMounts.deniedPrefixes.includes(p), `pyxis users mount ${p}: denied at submit`);
  });

  it("covers berthd's own directories, so that the node check of a fresh node following the doc finds nothing", () => {
    const c = example();
    const r = exampleRules();
    // what install.sh and Debian's slurmd leave on a node, and what the doc installs
    const present = new Map<string, string>([[c.initBinary, 'exe'], [c.taskProlog, 'exe'], [c.slurmdSpoolDir, 'directory'], [c.authz!.policyFile, 'file']]);
    const fs: NodeFs = {
      kind: (p) => (present.has(p) ? (present.get(p) === 'exe' ? 'file' : present.get(p) as 'file') : undefined),
      executable: (p) => present.get(p) === 'exe',
      readable: (p) => present.has(p),
    };
    assert.deepEqual(checkNode({ configFile: '/etc/berth/berthd.json', config: c, rules: r, rulesOnDisk: r.sha256 }, fs), []);
  });

  it('installed under another PREFIX, protects the berth directory install.sh made there', () => {
    const r = loadSiteRules(path.join(PREFIX, 'share', 'berth', 'examples', 'site.json'));
    assert.ok(r.protectedPaths.includes(`${PREFIX}/lib/berth`));
    assert.ok(!r.protectedPaths.includes('/usr/local/lib/berth'));
  });
});

describe('example daemon.json', () => {
  it('has no bridge, no iptables, berth\'s plugin, and the listeners and TLS files berthd expects', async () => {
    const d = daemonJson();
    const c = example();
    assert.equal(d.bridge, 'none');
    assert.equal(d.iptables, false);
    assert.equal(d['ip-masq'], false);
    assert.deepEqual(d['authorization-plugins'], [c.authz!.pluginName]);
    assert.equal(d.tlsverify, true);
    const hosts = d.hosts as string[];
    assert.ok(hosts.includes(c.dockerHost), `dockerd listens where berthd's dockerHost (${c.dockerHost}) points`);
    assert.ok(hosts.includes(`tcp://${c.authz!.dockerTlsAddress}`), 'the TLS listener is authz.dockerTlsAddress, which job users get as DOCKER_HOST');
    // the names berthd really writes: let it write them
    const dir = tmp('tls');
    const ca = await NodeCertificateAuthority.loadOrCreate(path.join(dir, 'ca'), 'n1');
    const files = await DockerAccess.writeServerFiles(ca, path.join(dir, 'tls'), 'n1');
    assert.equal(d.tlscacert, path.join(c.stateDir, 'tls', path.basename(files.ca)));
    assert.equal(d.tlscert, path.join(c.stateDir, 'tls', path.basename(files.cert)));
    assert.equal(d.tlskey, path.join(c.stateDir, 'tls', path.basename(files.key)));
  });

  it('has only keys dockerd knows', (t) => {
    const dockerd = '/usr/sbin/dockerd';
    if (!existsSync(dockerd)) return t.skip(`${dockerd} is not installed here`);
    if (process.getuid?.() !== 0) return t.skip('dockerd refuses to run as non-root before reading its config');
    const dir = tmp('daemon-json');
    // a copy whose listeners are private paths: nothing of the machine's own dockerd is touched
    const copy = { ...daemonJson(), hosts: [`unix://${dir}/file.sock`] };
    writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify(copy));
    const help = spawnSync(dockerd, ['--help'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
    const common = ['--config-file', path.join(dir, 'daemon.json'), '--data-root', path.join(dir, 'root'), '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'd.pid')];
    if (help.includes('--validate')) {
      const r = spawnSync(dockerd, ['--validate', ...common], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
      assert.equal(r.status, 0, r.stderr);
      return;
    }
    // dockerd 20.10 has no --validate. It checks for unknown keys first, then for directives given
    // both as a flag and in the file, and stops there: a -H flag makes it stop right after the check.
    const r = spawnSync(dockerd, [...common, '-H', `unix://${dir}/flag.sock`], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
    assert.doesNotMatch(r.stderr, /don't match any configuration option/);
    assert.match(r.stderr, /specified both as a flag and in the configuration file: hosts/);
  });
});

describe('systemd units', () => {
  it('berthd.service starts what install.sh installs, with KillMode=process and a reload berthd handles', () => {
    const repoUnit = unitEntries(read(SYSTEMD, 'berthd.service'));
    assert.deepEqual(values(repoUnit, 'Service', 'ExecStart'), ['/usr/local/sbin/berthd --config /etc/berth/berthd.json']);
    const installed = unitEntries(read(UNIT_DIR, 'berthd.service'));
    const exec = values(installed, 'Service', 'ExecStart');
    assert.deepEqual(exec, [`${PREFIX}/sbin/berthd --config /etc/berth/berthd.json`]);
    const wrapper = `${PREFIX}/sbin/berthd`;
    accessSync(wrapper, constants.X_OK);
    assert.match(readFileSync(wrapper, 'utf8'), new RegExp(`exec \\S+ .*${PREFIX}/lib/berth/berthd\\.js "\\$@"`));
    for (const e of [repoUnit, installed]) {
      assert.deepEqual(values(e, 'Service', 'KillMode'), ['process'], 'job containers are dockerd\'s; stopping berthd must not touch anything else');
      assert.ok(['simple', 'exec'].includes(values(e, 'Service', 'Type')[0] ?? 'simple'), 'berthd does not sd_notify or fork');
      assert.deepEqual(values(e, 'Service', 'ExecReload'), ['/bin/kill -HUP $MAINPID']);
      // a RuntimeDirectory would be deleted at every restart, with running jobs' task files and certificates
      if (values(e, 'Service', 'RuntimeDirectory').length) assert.deepEqual(values(e, 'Service', 'RuntimeDirectoryPreserve'), ['yes']);
      assert.ok(words(e, 'Unit', 'Requires').includes('docker.service'));
      assert.ok(!words(e, 'Unit', 'After').includes('docker.service'), 'After=docker.service would be a cycle with the docker drop-in');
    }
    assert.match(read(REPO, 'services', 'agent', 'main.ts'), /process\.on\('SIGHUP'/, 'ExecReload sends SIGHUP: berthd must handle it');
  });

  it('the docker drop-in orders dockerd after berthd and drops -H, as daemon.json\'s "hosts" needs', () => {
    const e = unitEntries(read(SYSTEMD, 'docker.service.d', 'berth.conf'));
    assert.ok(words(e, 'Unit', 'After').includes('berthd.service'));
    assert.ok(words(e, 'Unit', 'Wants').includes('berthd.service'));
    const exec = values(e, 'Service', 'ExecStart');
    assert.equal(exec[0], '', 'ExecStart= first: a drop-in must reset the packaged command line');
    assert.equal(exec.length, 2);
    assert.ok('hosts' in daemonJson());
    assert.doesNotMatch(exec[1]!, /(^|\s)(-H|--host)(\s|=|$)/, 'dockerd refuses -H when daemon.json has "hosts"');
  });

  it('the docker drop-in\'s wait really waits for berthd\'s plugin socket in runDir', async () => {
    const pre = values(unitEntries(read(SYSTEMD, 'docker.service.d', 'berth.conf')), 'Service', 'ExecStartPre');
    assert.equal(pre.length, 1);
    const m = pre[0]!.match(/^\/bin\/sh -c '(.*)'$/);
    assert.ok(m, 'ExecStartPre=/bin/sh -c \'...\'');
    const runDir = example().runDir;
    assert.ok(m[1]!.includes(`${runDir}/*/authz.sock`), `waits for ${runDir}/NODE/authz.sock, where berthd serves the plugin`);
    // what systemd hands to sh: $$ is a literal $; then a short wait and a private directory
    const dir = tmp('run');
    const script = m[1]!.replaceAll('$$', '$').replaceAll(`${runDir}/`, `${dir}/`).replace('-lt 300', '-lt 3');
    const without = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(without.status, 1);
    assert.match(without.stderr, /has not served its AuthZ plugin/);
    mkdirSync(path.join(dir, 'n1'));
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'n1', 'authz.sock'), resolve));
    try {
      const withSocket = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(withSocket.status, 0, withSocket.stderr);
    } finally {
      server.close();
    }
  });

  it('systemd-analyze verify: berthd.service and both drop-ins load cleanly, without an ordering cycle', (t) => {
    if (spawnSync('sh', ['-c', 'command -v systemd-analyze']).status !== 0) return t.skip('systemd-analyze is not installed here');
    const dir = tmp('units');
    // stand-ins for the packaged units, so that the check does not depend on what is installed
    writeFileSync(path.join(dir, 'docker.service'), '[Unit]\nDescription=stand-in\n[Service]\nType=notify\nExecStart=/usr/sbin/dockerd -H fd://\n');
    writeFileSync(path.join(dir, 'munge.service'), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n');
    writeFileSync(path.join(dir, 'slurmd.service'), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n');
    cpSync(path.join(UNIT_DIR, 'berthd.service'), path.join(dir, 'berthd.service'));
    for (const d of ['docker.service.d', 'slurmd.service.d']) {
      mkdirSync(path.join(dir, d));
      let text = read(SYSTEMD, d, 'berth.conf');
      // verify insists that commands exist; the drop-in's dockerd is Debian's
      if (!existsSync('/usr/sbin/dockerd')) text = text.replaceAll('/usr/sbin/dockerd', '/bin/true');
      writeFileSync(path.join(dir, d, 'berth.conf'), text);
    }
    const r = spawnSync('systemd-analyze', ['verify', ...['berthd', 'docker', 'slurmd'].map((u) => path.join(dir, `${u}.service`))], {
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` }, encoding: 'utf8', timeout: 60_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.doesNotMatch(out, /cycle|Unknown (key|section)|ignoring|berthd|berth\.conf|docker\.service|slurmd/i, out);
  });
});

describe('Slurm snippets', () => {
  it('slurm.conf names the hooks install.sh installs, PrologFlags=Alloc, and berthd\'s settings', () => {
    const c = loadConfig(path.join(PREFIX, 'share', 'berth', 'examples', 'berthd.json'), {});
    const conf = confLines(read(PREFIX, 'share', 'berth', 'examples', 'slurm.conf.snippet'));
    for (const k of ['Prolog', 'Epilog', 'TaskProlog']) {
      const hook = conf.get(k)!;
      assert.ok(hook.startsWith(`${PREFIX}/lib/berth/hooks/`), `${k}=${hook}`);
      accessSync(hook, constants.X_OK);
    }
    assert.ok(conf.get('PrologFlags')!.split(',').includes('Alloc'));
    assert.equal(conf.get('TaskProlog'), c.taskProlog, 'berthd bind-mounts the same TaskProlog into containers');
    assert.equal(conf.get('SlurmdSpoolDir'), c.slurmdSpoolDir);
    assert.ok(Number(conf.get('PrologEpilogTimeout')) > c.pullTimeoutMs / 1000, 'a prolog killed during a pull drains the node');
    assert.equal(conf.get('JobAcctGatherType'), 'jobacct_gather/cgroup', 'the sandbox\'s: a berth exec step is counted from its task\'s cgroups');
  });

  it('plugstack.conf loads the installed plugin with arguments the plugin parses, matching berthd\'s runDir', () => {
    const c = example();
    const line = plugstackLine(read(PREFIX, 'share', 'berth', 'examples', 'plugstack.conf.snippet'));
    assert.equal(line.kind, 'required');
    assert.equal(line.plugin, `${PREFIX}/lib/berth/berth_spank.so`);
    assert.ok(existsSync(line.plugin));
    const parsed = new Set([...read(REPO, 'scripts', 'native', 'berth_run.c').matchAll(/strncmp\(av\[i\], "([a-z_]+=)"/g)].map((m) => m[1]!));
    assert.deepEqual([...line.args.keys()].sort(), [...parsed].sort(), 'every argument berth_parse_args knows, and no other');
    assert.equal(line.args.get('berth='), `${PREFIX}/bin/berth`);
    accessSync(line.args.get('berth=')!, constants.X_OK);
    assert.equal(line.args.get('hook='), `${PREFIX}/lib/berth/berth-hook`);
    accessSync(line.args.get('hook=')!, constants.X_OK);
    assert.equal(line.args.get('run_dir='), c.runDir);
    assert.ok(line.args.get('site_registries=')!.split(',').every((h) => /^[a-z0-9.-]+(:\d+)?$/.test(h)));
  });
});

describe('log rotation and metrics', () => {
  it('logrotate covers berthd\'s log (copytruncate: berthd keeps it open) and the audit log, never the accounting log', (t) => {
    const c = example();
    const stanzas = logrotateStanzas(read(EXAMPLES, 'logrotate.berth'));
    const of = (file: string) => stanzas.find((s) => s.patterns.some((p) => globMatches(p, file)));
    assert.ok(of(c.logFile!)?.directives.includes('copytruncate'));
    const audit = of(c.authz!.auditFile);
    assert.ok(audit && !audit.directives.includes('copytruncate'), 'berthd opens the audit log per line: a rename is enough');
    for (const f of [c.accountingFile, `${c.accountingFile}.1`, `${c.accountingFile}.10`]) {
      assert.equal(of(f), undefined, `${f} is rotated by berthd itself`);
    }
    if (spawnSync('sh', ['-c', 'command -v logrotate']).status !== 0) return t.skip('logrotate is not installed here: the syntax check is skipped');
    const r = spawnSync('logrotate', ['-d', '-s', path.join(tmp('logrotate'), 'state'), path.join(EXAMPLES, 'logrotate.berth')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /error|unknown option|unexpected/i);
  });

  it('Prometheus scrapes the port of metrics.listen', () => {
    const port = example().metrics!.listen.split(':').pop();
    const text = read(EXAMPLES, 'prometheus-scrape.yml');
    const targets = [...text.matchAll(/'([A-Za-z0-9.-]+):(\d+)'/g)];
    assert.ok(targets.length > 0);
    for (const m of targets) assert.equal(m[2], port, `${m[0]} is the berthd metrics port`);
    assert.match(text, /metrics_path: \/metrics\b/);
  });
});

describe('site registry (docker-compose.yml, registry-nginx.conf)', () => {
  const conf = (): string => read(EXAMPLES, 'registry-nginx.conf');
  const compose = (): string => read(REPO, 'docker-compose.yml');
  /** the text of the `server { ... }` that listens on addr (servers hold blocks one level deep) */
  const server = (addr: string): string => {
    const s = [...conf().matchAll(/^ {2}server \{\n([\s\S]*?)^ {2}\}$/gm)].map((m) => m[1]!).find((b) => b.includes(`listen ${addr};`));
    assert.ok(s, `a server listening on ${addr}`);
    return s;
  };

  it('pulls on 5000 refuse every method but GET and HEAD; 5003 wants a login for everything', () => {
    const pull = server('127.0.0.1:5000');
    assert.match(pull, /if \(\$request_method !~ \^\(GET\|HEAD\)\$\) \{[^}]*return 401 /);
    assert.doesNotMatch(pull, /auth_basic/);
    const push = server('127.0.0.1:5003');
    assert.match(push, /^ {4}auth_basic "[^"]+";$/m, 'auth_basic for the whole server, GET /v2/ too: docker sends a login only after that 401');
    assert.match(push, /^ {4}auth_basic_user_file \/etc\/nginx\/registry-push\.htpasswd;$/m);
    assert.deepEqual([...conf().matchAll(/^\s*listen ([^;]+);/gm)].map((m) => m[1]), ['127.0.0.1:5000', '127.0.0.1:5003'], 'loopback only as shipped');
    // the sandbox and compose give these on the command line (-g); in the file they would clash
    assert.doesNotMatch(conf(), /^\s*(user|pid|daemon)\s/m);
  });

  it('compose wires the registry\'s socket and the htpasswd file to the paths the nginx config names', () => {
    const socket = /server unix:([^;]+);/.exec(conf())?.[1];
    assert.ok(socket);
    const c = compose();
    assert.ok(c.includes(`REGISTRY_HTTP_ADDR: ${socket}`) && c.includes('REGISTRY_HTTP_NET: unix'), 'the registry listens on the socket nginx proxies to');
    assert.equal([...c.matchAll(new RegExp(`- registry-socket:${path.dirname(socket)}$`, 'gm'))].length, 2, 'both containers mount the socket volume');
    assert.match(c, /^ {2}registry:\n(?: {4}.*\n)*? {4}network_mode: none$/m, 'the registry has no network: only nginx reaches it');
    assert.match(c, /- \.\/scripts\/examples\/registry-nginx\.conf:\/etc\/nginx\/nginx\.conf:ro$/m);
    assert.match(c, /- \/etc\/berth\/registry-push\.htpasswd:\/etc\/nginx\/registry-push\.htpasswd:ro$/m);
    assert.ok(read(REPO, 'docs', 'install.md').includes('htpasswd -B -c /etc/berth/registry-push.htpasswd site'), 'install.md creates the file compose mounts');
  });

  it('nginx accepts the config, where nginx is installed', (t) => {
    if (spawnSync('sh', ['-c', 'command -v nginx']).status !== 0) return t.skip('nginx is not installed here');
    if (process.getuid?.() !== 0) return t.skip('nginx -t wants root for its default paths');
    const dir = tmp('nginx');
    // stdout and stderr to a file: nginx opens /dev/stdout, which a socket (node's pipes) refuses
    const out = path.join(dir, 'out');
    const r = spawnSync('sh', ['-c', `nginx -t -q -c "$1" -g "pid ${dir}/nginx.pid;" >"$2" 2>&1`, 'sh', path.join(EXAMPLES, 'registry-nginx.conf'), out]);
    assert.equal(r.status, 0, readFileSync(out, 'utf8'));
  });
});

describe('mirror tier (mirror-tier-nginx.conf, docker-compose.yml)', () => {
  const conf = (): string => read(EXAMPLES, 'mirror-tier-nginx.conf');
  /** the body of the location whose line starts with `head` (locations hold blocks one level deep) */
  const location = (head: string): string => {
    const start = conf().indexOf(`    location ${head} {\n`);
    assert.ok(start >= 0, `a location ${head}`);
    const end = conf().indexOf('\n    }\n', start);
    return conf().slice(start, end);
  };
  const digestPaths = '~ "^/v2/.+/(blobs|manifests)/sha256:[a-f0-9]{64}$"';

  it('caches only paths named by a digest, never for a request with a login, and coalesces misses for as long as a big blob takes', () => {
    const cached = location(digestPaths);
    assert.match(cached, /^\s+proxy_cache berth_tier;$/m);
    assert.match(cached, /^\s+proxy_cache_bypass \$http_authorization;$/m, 'a request with Authorization is not answered from the cache');
    assert.match(cached, /^\s+proxy_no_cache \$http_authorization;$/m, 'nor does its answer fill it');
    assert.match(cached, /^\s+proxy_cache_valid 200 \S+;$/m, 'only 200s are kept (a 401 or 404 never is)');
    assert.match(cached, /^\s+proxy_cache_lock on;$/m);
    for (const d of ['proxy_cache_lock_timeout', 'proxy_cache_lock_age']) {
      const v = new RegExp(`^\\s+${d} (\\d+)([smh]);$`, 'm').exec(cached);
      assert.ok(v, d);
      assert.ok(Number(v[1]) * { s: 1, m: 60, h: 3600 }[v[2] as 's' | 'm' | 'h'] >= 600, `${d} lets a multi-GB blob finish (nginx's default is 5 s)`);
    }
    // everything else (tags, /v2/) passes through: no cache outside the digest location
    assert.equal([...conf().matchAll(/^\s+proxy_cache berth_tier;$/gm)].length, 1);
    assert.doesNotMatch(location('/v2/'), /proxy_cache/);
    assert.match(conf(), /proxy_cache_path \/var\/cache\/berth-mirror-tier [^;]*\bmax_size=\d+[kmg]\b[^;]*\binactive=\d+[smhd]\b/, 'a size bound and eviction');
    assert.deepEqual([...conf().matchAll(/^\s*listen ([^;]+);/gm)].map((m) => m[1]), ['127.0.0.1:5004'], 'loopback only as shipped');
    assert.doesNotMatch(conf(), /^\s*(user|pid|daemon)\s/m);
  });

  it('compose runs it with the shipped file and a cache volume at the path the config names', () => {
    const c = read(REPO, 'docker-compose.yml');
    assert.match(c, /^ {2}mirror-tier:\n(?: {4}.*\n)*? {6}- \.\/scripts\/examples\/mirror-tier-nginx\.conf:\/etc\/nginx\/nginx\.conf:ro$/m);
    assert.match(c, /^ {6}- mirror-tier-cache:\/var\/cache\/berth-mirror-tier$/m);
  });

  it('nginx accepts the config, where nginx is installed', (t) => {
    if (spawnSync('sh', ['-c', 'command -v nginx']).status !== 0) return t.skip('nginx is not installed here');
    if (process.getuid?.() !== 0) return t.skip('nginx -t wants root for its default paths');
    const dir = tmp('nginx-tier');
    const file = path.join(dir, 'nginx.conf');
    writeFileSync(file, conf().replace('/var/cache/berth-mirror-tier ', `${dir}/cache `));
    const out = path.join(dir, 'out');
    const r = spawnSync('sh', ['-c', `nginx -t -q -c "$1" -g "pid ${dir}/nginx.pid;" >"$2" 2>&1`, 'sh', file, out]);
    assert.equal(r.status, 0, readFileSync(out, 'utf8'));
  });
});

/** The create body the docker CLI sends for the flags the docs use (docker run [FLAGS] IMAGE CMD...). */
function dockerRunBody(command: string): Record<string, unknown> {
  const words = command.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ['docker', 'run']);
  const host: Record<string, unknown> = { NetworkMode: 'default', RestartPolicy: { Name: 'no' }, LogConfig: { Type: '', Config: {} }, SecurityOpt: null };
  const body: Record<string, unknown> = { Env: null, Cmd: [], Labels: {}, HostConfig: host };
  const bytes = (v: string): number => Number(v.slice(0, -1)) * { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[v.slice(-1).toLowerCase() as 'k' | 'm' | 'g'];
  let i = 2;
  for (; i < words.length && words[i]!.startsWith('--'); i++) {
    const flag = words[i]!;
    if (flag === '--rm') host.AutoRemove = true;
    else if (flag === '--privileged') host.Privileged = true;
    else if (flag === '--user') body.User = words[++i];
    else if (flag === '--security-opt') host.SecurityOpt = [...((host.SecurityOpt as string[] | null) ?? []), words[++i]];
    else if (flag === '--memory') host.Memory = bytes(words[++i]!);
    else if (flag === '--memory-swap') host.MemorySwap = bytes(words[++i]!);
    else if (flag === '--cpus') host.NanoCpus = Number(words[++i]) * 1e9;
    else assert.fail(`${flag}: add it to dockerRunBody`);
  }
  body.Image = words[i];
  body.Cmd = words.slice(i + 1);
  return body;
}

describe('docs/install.md', () => {
  const md = read(REPO, 'docs', 'install.md');

  it('berthd.json fragments pass the loader; the daemon.json, slurm.conf and plugstack.conf shown are the shipped ones', () => {
    const fragments = fencedBlocks(md, 'json berthd.json');
    assert.ok(fragments.length > 0);
    const dir = tmp('doc-json');
    fragments.forEach((text, i) => {
      const f = path.join(dir, `${i}.json`);
      writeFileSync(f, text);
      loadConfig(f, {});
    });
    const daemon = fencedBlocks(md, 'json daemon.json');
    assert.equal(daemon.length, 1);
    assert.deepEqual(JSON.parse(daemon[0]!), daemonJson());
    const conf = [...md.matchAll(/^```\n(Prolog=[\s\S]*?)^```$/gm)];
    assert.equal(conf.length, 1);
    assert.deepEqual(confLines(conf[0]![1]!), confLines(read(EXAMPLES, 'slurm.conf.snippet')));
    assert.ok(md.includes(plugstackLine(read(EXAMPLES, 'plugstack.conf.snippet')).kind + ' /usr/local/lib/berth/berth_spank.so'));
    const shipped = read(EXAMPLES, 'plugstack.conf.snippet').split('\n').find((l) => l.startsWith('required '))!;
    assert.ok(md.includes(shipped), 'the plugstack line is the shipped one');
  });

  it('site.json fragments pass the site rules loader, and every file the doc installs from the examples is one install.sh installs', () => {
    const fragments = fencedBlocks(md, 'json site.json');
    assert.ok(fragments.length > 0);
    fragments.forEach((text, i) => parseSiteRules(text, `install.md site.json fragment ${i}`));
    const installs = [...md.matchAll(/^\s*install -m (\d{4}) (\/usr\/local\/share\/berth\/\S+) (\/\S+)$/gm)];
    assert.ok(installs.length >= 6, `only ${installs.length} install lines`);
    for (const [, mode, src, dest] of installs) {
      assert.ok(existsSync(src!.replace('/usr/local/', `${PREFIX}/`)), `install.sh installs ${src}`);
      if (dest!.startsWith('/etc/berth/site.json')) assert.equal(mode, '0644', 'every user reads the site rules');
    }
    assert.ok(installs.some(([, , src, dest]) => src!.endsWith('/examples/site.json') && dest === example().siteRules), 'the doc installs site.json where berthd.json looks');
  });

  it('has the registry login done before dockerd gets berth\'s plugin, which refuses everything until berthd runs', () => {
    const login = md.indexOf('docker --config /etc/berth/registry login');
    const daemonJson = md.indexOf('install -m 0644 /usr/local/share/berth/examples/daemon.json /etc/docker/daemon.json');
    const start = md.indexOf('systemctl enable --now berthd docker');
    assert.ok(login > 0 && daemonJson > 0 && start > 0);
    assert.ok(login < daemonJson && daemonJson < start, 'login, then daemon.json, then berthd and docker');
    assert.ok(md.indexOf('/etc/berth/site.json') < daemonJson, 'the site rules berthd needs at start come before too');
  });

  it('starts without systemd in the order the units give: berthd, its socket, dockerd with daemon.json, slurmd', () => {
    const [block] = fencedBlocks(md, 'sh without-systemd');
    assert.ok(block);
    const lines = block.split('\n').filter(Boolean);
    const at = (re: RegExp): number => lines.findIndex((l) => re.test(l));
    const berthd = at(/^\/usr\/local\/sbin\/berthd --config \/etc\/berth\/berthd\.json /);
    const wait = at(/^until \[ -S \/run\/berth\/\$\(hostname -s\)\/admin\.sock \]/);
    const dockerd = at(/^\/usr\/sbin\/dockerd --config-file \/etc\/docker\/daemon\.json /);
    const slurmd = at(/^\/usr\/sbin\/slurmd$/);
    assert.deepEqual([berthd >= 0, wait > berthd, dockerd > wait, slurmd > dockerd], [true, true, true, true], block);
    // the socket waited for is where berthd serves (runDir/NODE) and is made after the AuthZ plugin's
    assert.equal(example().runDir, '/run/berth');
    const main = read(REPO, 'services', 'agent', 'main.ts');
    assert.ok(main.indexOf('await startAuthzPlugin(') < main.indexOf('await startServers('), 'admin.sock after authz.sock');
    accessSync(path.join(PREFIX, 'sbin', 'berthd'), constants.X_OK);
    const daemon = daemonJson();
    assert.equal(daemon['default-runtime'], 'berth');
    assert.match((daemon.runtimes as Record<string, { path: string }>).berth!.path, /\/berth-runc$/);
  });

  it("§9's docker run is what the shipped policy admits on a default job, and --privileged is refused", () => {
    const c = example();
    const rules = exampleRules();
    const policy = new SitePolicy(path.join(REPO, 'policies', 'hpc-default.json'), silentLogger(), {
      registries: [...rules.registries],
      site: { runtime: c.authz!.runtime, logDrivers: c.authz!.logDrivers, logMaxSizeBytes: c.authz!.logMaxSizeBytes, logMaxFiles: c.authz!.logMaxFiles, allowSwap: c.authz!.allowSwap, pidsLimit: c.authz!.pidsLimit },
    });
    policy.load();
    // a default job: one CPU, the node's memory (no --mem)
    const ctx = { user: 'alice', groups: ['alice'], job: { jobId: '42', uid: 2001, gid: 2001, cpus: 1, memoryBytes: 4000 * 1024 * 1024, devices: [], mountPrefixes: [], groupIds: [2001] } };
    // through the tasks' DOCKER_HOST, the job's endpoint, which labels the container as the job's
    const judge = (command: string) => {
      const sent = Buffer.from(JSON.stringify(dockerRunBody(command.replace('$(id -u):$(id -g)', '2001:2001'))));
      const { url, body } = rewriteRequest('POST', '/v1.41/containers/create', '42', sent);
      return policy.decide(new DockerRequest({ method: 'POST', uri: url, body: body!.toString('utf8'), contentType: 'application/json' }, policy.mapAction('POST', url)), ctx);
    };
    const [allowed] = fencedBlocks(md, 'sh docker-run-allowed');
    const [refused] = fencedBlocks(md, 'sh docker-run-refused');
    assert.ok(allowed && refused);
    const yes = judge(allowed.trim());
    assert.equal(yes.allow, true, policy.formatDenial(yes));
    const no = judge(refused.trim());
    assert.equal(no.allow, false);
    assert.match(policy.formatDenial(no), /hpc-default.*Privileged/);
    // what the doc said before: swap twice the memory, refused on this site
    const old = judge(allowed.trim().replace(' --memory-swap 1g', ''));
    assert.equal(old.allow, false);
    assert.match(policy.formatDenial(old), /--memory-swap equal to --memory/);
    policy.close();
  });

  it('every berthd setting it names in `key.sub` form exists in the schema', () => {
    const top = objectShape(configSchema)!;
    const named = new Set([...md.matchAll(/`([a-z][A-Za-z]*(?:\.[a-z][A-Za-z]*)+)`/g)].map((m) => m[1]!));
    let checked = 0;
    for (const key of named) {
      const [first, ...rest] = key.split('.');
      if (!(first! in top)) continue;
      let shape: Record<string, z.ZodTypeAny> | undefined = top;
      let t: z.ZodTypeAny | undefined = top[first!];
      for (const part of rest) {
        shape = t && objectShape(t);
        assert.ok(shape, `${key}: ${first} has no sub-keys`);
        t = shape[part];
        assert.ok(t, `${key} is not a berthd setting`);
      }
      checked++;
    }
    assert.ok(checked >= 5, `only ${checked} settings named`);
    const site = siteRulesSchema._def.schema.shape;
    for (const bold of [...md.matchAll(/\*\*`([A-Za-z]+)(?:\.[A-Za-z]+)?`\*\*/g)].map((m) => m[1]!)) assert.ok(bold in top || bold in site, `${bold} is not a berthd setting nor a site rule`);
  });

  it("install.sh's closing hint names every file the doc installs next, on nodes and on login nodes", () => {
    for (const f of ['examples/site.json', 'examples/berthd.json', 'examples/daemon.json', 'systemd/docker.service.d/berth.conf', 'systemd/slurmd.service.d/berth.conf',
      '/etc/berth/site.json', '/etc/berth/berthd.json', '/etc/docker/daemon.json', '/etc/systemd/system/docker.service.d/berth.conf', '/etc/systemd/system/slurmd.service.d/berth.conf']) {
      assert.ok(INSTALL_OUT.includes(f), `install.sh --systemd's hint names ${f}:\n${INSTALL_OUT}`);
      if (!f.startsWith('/etc/systemd') && !f.startsWith('systemd/')) assert.ok(md.includes(f.replace(/^examples\//, '/usr/local/share/berth/examples/')), `install.md installs ${f}`);
    }
    assert.match(INSTALL_OUT, /systemctl daemon-reload && systemctl enable --now berthd docker && systemctl restart slurmd/);
    assert.ok(md.includes('systemctl enable --now berthd docker') && md.includes('systemctl restart slurmd'));
    assert.match(INSTALL_OUT_PLAIN, /login node: .*examples\/site\.json -> \/etc\/berth\/site\.json, the same file as on the compute nodes/);
  });

  it('mentions every file it ships, links documents that exist, and is linked from README and operations.md', () => {
    const shipped = [...readdirSync(EXAMPLES), 'berthd.service', 'docker.service.d/berth.conf', 'slurmd.service.d/berth.conf'];
    for (const f of shipped) assert.ok(md.includes(f), `install.md mentions ${f}`);
    for (const f of readdirSync(path.join(SYSTEMD))) assert.ok(statSync(path.join(SYSTEMD, f)).isDirectory() || shipped.includes(f));
    for (const m of md.matchAll(/\]\(([^)#]+\.md)\)/g)) assert.ok(existsSync(path.join(REPO, 'docs', m[1]!)), `link ${m[1]}`);
    assert.match(read(REPO, 'README.md'), /\(docs\/install\.md\)/);
    assert.match(read(REPO, 'docs', 'operations.md'), /\(install\.md\)/);
  });
});
