// berthd's node check against a fake file system: what a fresh machine lacks (the example's
// site mounts, berth-init, the TaskProlog), what is only a warning, dockerd's runtime finding
// the runtime gate, and a blocking finding turned into one drain, not one per job.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DrainStore } from '../../services/agent/admin/drain-store';
import { checkDockerRuntime, checkNode, describeProblem, NODE_CHECK_BY, NodeCheck, type NodeFs, type NodeProblem, type PathKind } from '../../services/agent/admin/node-check';
import { nodeStatus } from '../../services/agent/admin/node-status';
import { loadConfig } from '../../services/agent/config';
import { type Logger, silentLogger } from '../../services/agent/logger';
import { BerthError } from '../../services/shared/errors';
import { builtinSiteRules, parseSiteRules } from '../../services/shared/site-rules';

/** a file system of exactly these paths */
function fakeFs(entries: Record<string, PathKind | 'exe'>): NodeFs & { entries: Record<string, PathKind | 'exe'> } {
  return {
    entries,
    kind: (p) => (entries[p] === 'exe' ? 'file' : entries[p]),
    executable: (p) => entries[p] === 'exe',
    readable: (p) => entries[p] !== undefined,
  };
}

const config = loadConfig(undefined, { node: 'c01', stateDir: '/var/lib/berth', authz: { policyFile: '/usr/local/lib/berth/policies/hpc-default.json', runtime: 'berth' } });
const SITE = '/etc/berth/site.json';
const rules = parseSiteRules(JSON.stringify({
  mounts: [{ source: '/scratch', target: '/scratch' }, { source: '/apps', target: '/apps', readOnly: true }],
  registries: ['registry.site:5000'],
}), SITE);
/** what install.sh and Slurm leave on a node */
const healthy = (): Record<string, PathKind | 'exe'> => ({
  '/scratch': 'directory', '/apps': 'directory', '/usr/local/lib/berth/berth-init': 'exe', '/usr/local/lib/berth/hooks/task-prolog': 'exe',
  '/var/lib/slurm/slurmd': 'directory', '/usr/local/lib/berth/policies/hpc-default.json': 'file',
});

function recordingLog(): Logger & { lines: { level: string; msg: string; meta: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; meta: Record<string, unknown> }[] = [];
  const base = silentLogger();
  const at = (level: string) => (msg: string, meta: Record<string, unknown> = {}) => void lines.push({ level, msg, meta });
  const log = Object.assign(Object.create(base) as Logger, { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: () => log, lines });
  return log;
}

describe('node check: the file system', () => {
  it("warns (without blocking jobs) when dockerd's data-root is fuller than the image GC's high watermark", () => {
    const fs = (freeBytes: number): NodeFs => ({ ...fakeFs(healthy()), space: (p) => (p === '/var/lib/docker' ? { totalBytes: 1000, freeBytes } : undefined) });
    const subject = { configFile: '/etc/berth/berthd.json', config, rules, rulesOnDisk: rules.sha256, engineDisk: { dataRoot: '/var/lib/docker', highPercent: 85 } };
    assert.deepEqual(checkNode(subject, fs(200)), [], '80% full: nothing to say');
    const [p, ...more] = checkNode(subject, fs(100));
    assert.deepEqual(more, []);
    assert.equal(p!.blocksJobs, false);
    assert.equal(p!.path, '/var/lib/docker');
    assert.equal(p!.setting, '/etc/berth/berthd.json, imageGc.highPercent');
    assert.match(p!.problem, /fuller than the image GC's high watermark \(85%\).*DISK_FULL and drains the node/);
    assert.equal(checkNode(subject, fs(50))[0]!.problem, p!.problem, 'the same words as it fills further: logged once');
    assert.deepEqual(checkNode({ ...subject, engineDisk: undefined }, fs(0)), [], 'not before dockerd said where its data-root is');
  });

  it('passes a node that has everything', () => {
    assert.deepEqual(checkNode({ configFile: '/etc/berth/berthd.json', config, rules, rulesOnDisk: rules.sha256 }, fakeFs(healthy())), []);
  });

  it("names each site mount source a fresh machine lacks, and berth-init, as blocking jobs, with the file and key", () => {
    const fs = fakeFs({ ...healthy(), '/scratch': undefined as never, '/apps': 'socket', '/usr/local/lib/berth/berth-init': 'file' });
    delete fs.entries['/scratch'];
    const p = checkNode({ configFile: '/etc/berth/berthd.json', config, rules }, fs);
    assert.deepEqual(p.map((x) => [x.setting, x.path, x.blocksJobs]), [
      [`site rules ${SITE}, mounts.0.source`, '/scratch', true],
      [`site rules ${SITE}, mounts.1.source`, '/apps', true],
      ['/etc/berth/berthd.json, initBinary', '/usr/local/lib/berth/berth-init', true],
    ]);
    assert.equal(describeProblem(p[0]!), `/scratch does not exist on c01; every job container mounts it at /scratch: create or mount it, or remove it from the site rules (site rules ${SITE}, mounts.0.source)`);
    assert.match(p[1]!.problem, /^is a socket, not a directory or a file/);
    assert.match(p[2]!.problem, /^is not executable/);
  });

  it('only warns about what some jobs need: the TaskProlog, the spool directory, the policy file, a device that is not one', () => {
    const fs = fakeFs({ ...healthy(), '/dev/infiniband/rdma_cm': 'file' });
    for (const k of ['/usr/local/lib/berth/hooks/task-prolog', '/var/lib/slurm/slurmd', '/usr/local/lib/berth/policies/hpc-default.json']) delete fs.entries[k];
    const p = checkNode({ configFile: '/etc/berth/berthd.json', config, rules }, fs);
    assert.deepEqual(p.map((x) => [x.setting.replace('/etc/berth/berthd.json, ', ''), x.blocksJobs]), [
      ['rdmaDevices', false], ['taskProlog', false], ['slurmdSpoolDir', false], ['authz.policyFile', false],
    ]);
    assert.match(p[1]!.problem, /if slurm\.conf's TaskProlog names it, native container steps fail/);
  });

  it("warns when berthd's own directories are not in the rules submit-check reads, and when the file changed on disk", () => {
    const own = loadConfig(undefined, { node: 'c01', stateDir: '/srv/berth-state', initBinary: '/usr/local/lib/berth/berth-init' });
    const p = checkNode({ configFile: 'f', config: own, rules, rulesOnDisk: 'f'.repeat(64) }, fakeFs(healthy()));
    assert.deepEqual(p.map((x) => [x.path, x.blocksJobs]), [['/srv/berth-state', false], [SITE, false]]);
    assert.match(p[0]!.problem, /\(berthd's stateDir\) is not under a path the site rules deny or protect: berth submit-check lets a job ask to mount it/);
    assert.match(p[1]!.problem, new RegExp(`changed on disk since berthd read it \\(sha256 ${rules.sha256.slice(0, 12)} in force, ffffffffffff on disk\\): reload berthd`));
  });
});

describe("node check: dockerd's runtime", () => {
  const runtimes = (args: string[]) => ({ defaultRuntime: 'berth', runtimes: { berth: { path: '/usr/local/lib/berth/berth-runc', runtimeArgs: args }, runc: { path: 'runc', runtimeArgs: [] } } });

  it("blocks jobs when berth-runc asks for the runtime gate where this berthd does not listen", () => {
    assert.deepEqual(checkDockerRuntime(config, runtimes(['--berth-socket=/run/berth/c01/runtime.sock'])), []);
    assert.deepEqual(checkDockerRuntime(config, runtimes([]), 'c01'), [], 'berth-runc\'s default: /run/berth/HOST/runtime.sock');
    const p = checkDockerRuntime(config, runtimes([]), 'login3', fakeFs({}));
    assert.equal(p.length, 1);
    assert.equal(p[0]!.blocksJobs, true);
    assert.equal(p[0]!.path, '/run/berth/login3/runtime.sock');
    assert.match(p[0]!.problem, /but nothing listens there \(this berthd's gate is \/run\/berth\/c01\/runtime\.sock\): every container start fails; give "runtimeArgs": \["--berth-socket=\/run\/berth\/c01\/runtime\.sock"\]/);
    // another berthd's gate answers (several agents on one dockerd): containers start, so only a warning
    const other = checkDockerRuntime(config, runtimes(['--berth-socket=/run/berth/n1/runtime.sock']), 'c01', fakeFs({ '/run/berth/n1/runtime.sock': 'socket' }));
    assert.deepEqual(other.map((x) => x.blocksJobs), [false]);
    assert.match(other[0]!.problem, /another berthd's/);
  });

  it('warns when dockerd runs containers with plain runc while users have Docker access', () => {
    const p = checkDockerRuntime(config, { defaultRuntime: 'runc', runtimes: { runc: { path: 'runc', runtimeArgs: [] } } });
    assert.deepEqual(p.map((x) => [x.setting, x.blocksJobs]), [["dockerd's daemon.json, default-runtime", false], ['berthd.json, authz.runtime', false]]);
  });
});

describe('node check over time', () => {
  it('drains the node once, at the first job that needs the missing piece; later jobs get the same reason until resume', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-node-check-'));
    const drain = new DrainStore(dir);
    const fs = fakeFs(healthy());
    delete fs.entries['/scratch'];
    const log = recordingLog();
    const check = new NodeCheck({ node: 'c01', drain, log, check: () => checkNode({ configFile: 'berthd.json', config, rules }, fs) });
    check.run(true);
    assert.equal(log.lines.filter((l) => l.level === 'error').length, 1, 'said at start');
    assert.equal(log.lines[0]!.meta.path, '/scratch');
    assert.equal(drain.get().drained, false, 'no drain before a job needs it');
    check.setRuntimeProblems([{ setting: 'daemon.json', path: '/x.sock', problem: 'is another berthd\'s', blocksJobs: false }]);
    assert.deepEqual(log.lines.map((l) => [l.level, l.meta.path]), [['error', '/scratch'], ['warn', '/x.sock']], 'only the new finding is logged again');
    check.setRuntimeProblems([]);

    const refused = (jobId: string): string => {
      try {
        check.assertReady(jobId);
      } catch (err) {
        assert.ok(err instanceof BerthError && err.code === 'NODE_DRAINED');
        return err.message;
      }
      assert.fail(`job ${jobId} was let through`);
    };
    const first = refused('101');
    assert.match(first, /^node c01 cannot make containers: \/scratch does not exist on c01; .*\(site rules \/etc\/berth\/site\.json, mounts\.0\.source\)\. berthd has drained the node for container jobs; job 101 was not started here\. Once it is fixed an admin runs: berth resume --nodes c01$/);
    assert.deepEqual([drain.get().drained, drain.get().by], [true, NODE_CHECK_BY]);
    assert.match(drain.get().reason, /^berth node check: \/scratch does not exist on c01/);
    const since = drain.get().since;
    // what the prologue handler does for the next job: the drain refuses it with the same reason
    assert.throws(() => drain.assertAccepting('c01', '102'), new RegExp(`reason: berth node check: /scratch does not exist`));
    refused('103');
    assert.equal(drain.get().since, since, 'one drain, not one per job');
    assert.equal(log.lines.filter((l) => /node drained/.test(l.msg)).length, 1, 'logged once');

    // an admin drain is never overwritten by the check
    drain.resume();
    drain.drain('new disks', 'root');
    refused('104');
    assert.deepEqual([drain.get().reason, drain.get().by], ['new disks', 'root']);

    // fixed: the next container is made; the drain stays until berth resume
    drain.resume();
    drain.drain(first, NODE_CHECK_BY);
    fs.entries['/scratch'] = 'directory';
    check.assertReady('105');
    assert.equal(drain.get().drained, true);
    assert.ok(log.lines.some((l) => l.msg === 'node check passes now'));
    assert.ok(log.lines.some((l) => /still drained by the node check; end it with: berth resume --nodes c01/.test(l.msg)));
  });

  it('shows the findings and the site rules in berth status', async () => {
    const problems: NodeProblem[] = [{ setting: 's', path: '/scratch', problem: 'does not exist', blocksJobs: true }];
    const s = await nodeStatus({
      node: 'c01', version: '0.1.0', startedAt: new Date(), lifecycle: { phase: 'serving', detail: '' }, drain: () => ({ drained: false, reason: '', since: '', by: '' }),
      jobs: () => [], ping: async () => undefined, containers: async () => [], images: async () => ({ images: [], usagePercent: 1 }),
      siteRules: () => builtinSiteRules(), nodeProblems: () => problems,
    });
    assert.deepEqual([s.siteRulesFile, s.siteRulesSha256, s.nodeProblems], ['', '', problems]);
  });
});
