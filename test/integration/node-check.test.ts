// berthd's node check against a real berthd of the test's own (nc1, on the sandbox's n1
// dockerd) whose site rules name a site mount that does not exist: it says so at start and in
// berth status, the first prolog fails with a reason naming it and drains the node for
// container jobs once, the next prolog is refused with the same reason, berthd's log has a
// line for each failed prolog, and once the directory exists and the node is resumed a
// prolog makes a container that mounts it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BERTH, type OwnAgents, startOwnAgents } from '../support/own-agents';
import { sandbox } from '../support/stack';

interface Run { code: number; stdout: string; stderr: string }

function berth(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BERTH, ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('node check of a real berthd', { timeout: 240_000 }, () => {
  let agents: OwnAgents;
  let env: Record<string, string>;
  let scratch = '';
  let siteFile = '';

  before(async () => {
    agents = await startOwnAgents(['nc1'], (_name, base) => {
      // the site rules of this agent: berth's defaults plus its own directories, and a site mount that is not there
      scratch = path.join(base, 'scratch');
      siteFile = path.join(base, 'site.json');
      writeFileSync(siteFile, JSON.stringify({
        mounts: [{ source: scratch, target: '/scratch' }],
        protectedPaths: [path.dirname(base), '/usr/local/lib/berth', '/var/lib/docker'],
        registries: ['127.0.0.1:5000'],
      }), { mode: 0o644 });
      mkdirSync(path.join(base, 'spool'));
      return { siteRules: siteFile, slurmdSpoolDir: path.join(base, 'spool'), logLevel: 'info', logFile: path.join(base, 'berthd.log') };
    });
    env = { BERTH_RUN_DIR: agents.runDir };
  });

  after(async () => {
    await agents?.stop();
  });

  const nc1 = () => agents.agents[0]!;
  const logLines = (): { message: string; [k: string]: unknown }[] => {
    const file = path.join(path.dirname(nc1().config), 'berthd.log');
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { message: string }) : [];
  };
  /** the log file is written behind the sockets: wait for a line */
  const waitForLog = async (message: string): Promise<void> => {
    for (const until = Date.now() + 10_000; !logLines().some((l) => l.message === message);) {
      if (Date.now() > until) assert.fail(`no '${message}' in berthd's log: ${JSON.stringify(logLines().map((l) => l.message))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const hookEnv = (jobId: string) => ({
    ...env, SLURM_JOB_ID: jobId, SLURM_JOB_UID: '2001', SLURM_JOB_GID: '2001', SLURM_JOB_USER: 'alice', SLURMD_NODENAME: 'nc1',
    SPANK_BERTH_CONTAINER_IMAGE: sandbox().demoImage, SLURM_JOB_WORK_DIR: '/tmp',
  });

  it('says at start which site mount source is missing, and berth status shows it with the rules\' sha256', async () => {
    await waitForLog('berthd serving');
    const start = logLines().filter((l) => l.message === 'node check: container jobs cannot run here until this is fixed');
    assert.equal(start.length, 1, JSON.stringify(logLines().map((l) => l.message)));
    assert.equal(start[0]!.path, scratch);
    assert.equal(start[0]!.setting, `site rules ${siteFile}, mounts.0.source`);
    const rules = logLines().find((l) => l.message === 'site rules')!;
    assert.equal(rules.file, siteFile);

    const st = await berth(['status', '--node', 'nc1'], env);
    assert.equal(st.code, 0, st.stderr);
    // (a warning may come with it: the sandbox's dockerd runs berth-runc against n1's berthd, not this one)
    assert.match(st.stdout, new RegExp(`^nc1 +serving .* ok +${String(rules.sha256).slice(0, 12)} +1 blocking`, 'm'));
    assert.ok(st.stdout.includes(`nc1: blocks container jobs: ${scratch} does not exist on nc1; every job container mounts it at /scratch: create or mount it, or remove it from the site rules (site rules ${siteFile}, mounts.0.source)\n`), st.stdout);
    const json = JSON.parse((await berth(['status', '--node', 'nc1', '--json'], env)).stdout) as { nodes: { result: { siteRulesSha256: string; nodeProblems: { path: string; blocksJobs: boolean }[] } }[] };
    assert.equal(json.nodes[0]!.result.siteRulesSha256, rules.sha256);
    assert.deepEqual(json.nodes[0]!.result.nodeProblems.filter((p) => p.blocksJobs).map((p) => p.path), [scratch]);
  });

  it('fails the first prolog with a reason naming it and drains the node once; the next prolog gets the same reason', async () => {
    const first = await berth(['hook', 'prolog'], hookEnv('881001'));
    assert.equal(first.code, 1);
    assert.ok(first.stderr.includes(`node nc1 cannot make containers: ${scratch} does not exist on nc1;`), first.stderr);
    assert.match(first.stderr, /berthd has drained the node for container jobs; job 881001 was not started here\. Once it is fixed an admin runs: berth resume --nodes nc1/);
    const st = JSON.parse((await berth(['status', '--node', 'nc1', '--json'], env)).stdout) as { nodes: { result: { state: string; drain: { drained: boolean; reason: string; by: string; since: string } } }[] };
    const drain = st.nodes[0]!.result.drain;
    assert.deepEqual([st.nodes[0]!.result.state, drain.drained, drain.by], ['AGENT_STATE_DRAINING', true, 'berthd node check']);
    assert.ok(drain.reason.startsWith(`berth node check: ${scratch} does not exist on nc1`), drain.reason);

    const second = await berth(['hook', 'prolog'], hookEnv('881002'));
    assert.equal(second.code, 1);
    assert.ok(second.stderr.includes(`node nc1 is drained for container jobs since ${drain.since} (reason: berth node check: ${scratch} does not exist on nc1`), second.stderr);
    await waitForLog('node drained for container jobs: it lacks what every container needs');
    for (const until = Date.now() + 10_000; logLines().filter((l) => l.message === 'prologue failed').length < 2 && Date.now() < until;) await new Promise((r) => setTimeout(r, 100));
    const failed = logLines().filter((l) => l.message === 'prologue failed');
    assert.deepEqual(failed.map((l) => [l.job, l.code]), [['881001', 'NODE_DRAINED'], ['881002', 'NODE_DRAINED']], 'berthd logs every failed prologue');
    assert.ok(String(failed[0]!.error).includes(`${scratch} does not exist`));
    assert.equal(logLines().filter((l) => /^node drained for container jobs/.test(l.message)).length, 1, 'drained once');
  });

  it('once the directory exists and the node is resumed, a prolog makes a container that mounts it', async () => {
    mkdirSync(scratch, { mode: 0o755 });
    writeFileSync(path.join(scratch, 'marker'), 'site mount\n');
    const resumed = await berth(['resume', '--node', 'nc1'], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    const st = await berth(['status', '--node', 'nc1'], env);
    assert.match(st.stdout, /^nc1 +serving .* ok +[0-9a-f]{12} +(ok|1 warning) *$/m);
    assert.doesNotMatch(st.stdout, /blocks container jobs/);
    const ok = await berth(['hook', 'prolog'], hookEnv('881003'));
    try {
      assert.equal(ok.code, 0, ok.stderr);
      const job = JSON.parse((await berth(['job', '881003', '--node', 'nc1', '--json'], env)).stdout) as { containerId: string };
      assert.ok(job.containerId);
      const binds = await new Promise<string>((resolve) => execFile('docker', ['-H', `unix://${process.env.BERTH_TEST_DOCKER_SOCKET || '/run/berth-sandbox/n1/docker.sock'}`, 'inspect', '--format', '{{json .HostConfig.Binds}}', job.containerId], (_e, out) => resolve(out)));
      assert.ok(binds.includes(`${scratch}:/scratch`), binds);
    } finally {
      await berth(['hook', 'epilog'], hookEnv('881003'));
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
