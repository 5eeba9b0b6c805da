// Steps that join their job's container as it is ask berthd nothing (issue 15): they read the
// job's container from RUN_DIR/NODE/tasks/JOB.job and leave their start and end in
// RUN_DIR/NODE/step-spool/ for berthd to read. Shown here with berthd stopped on the node
// while one step runs and while a second one starts and ends: both run, and both reach
// berth's accounting once berthd is back.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBerthd, startBerthd, stopBerthd, until, waitServing } from '../support/berthd';
import { accountingRecords, jobDir, jobIdFrom, readIfExists, resumeNodes, run, writeScript } from '../support/slurm';
import { sandbox } from '../support/stack';

describe('native steps while berthd is away', { timeout: 240_000 }, () => {
  const cancel: string[] = [];
  before(() => {
    sandbox();
    resumeNodes();
  });
  after(async () => {
    for (const id of cancel) run('scancel', [id]);
    await ensureBerthd(['n2']);
  });

  it("runs a job's steps and records them when berthd is stopped during one and started again after the next has ended", async (t) => {
    const image = sandbox().demoImage;
    const dir = jobDir('alice', 'step-spool');
    const out = path.join(dir, 'out.txt');
    const flag = (name: string) => path.join(dir, name);
    const script = writeScript(dir, 'job.sh', [
      `srun --container-image=${image} sh -c 'touch ${flag('running')}; while [ ! -e ${flag('go')} ]; do sleep 0.1; done; cat /etc/berth-demo-release; exit 5'`,
      'echo "first-exit=$?"',
      `srun --container-image=${image} sh -c 'echo "second: $(cat /etc/berth-demo-release)"'`,
      'echo "second-exit=$?"',
      `while [ ! -e ${flag('resume')} ]; do sleep 0.1; done`,
    ].join('\n'), 'alice');
    const sub = run('sbatch', ['-N1', '-w', 'n2', '--no-container-batch', `--container-image=${image}`, '-o', out, script], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    cancel.push(jobId);
    await until('the first step running', () => existsSync(flag('running')), 120_000, 100);
    await stopBerthd('n2', 'SIGKILL');
    writeFileSync(flag('go'), '');
    // the first step ends and the second starts and ends, berthd down all the while
    const text = await until('both steps ended', () => /^second-exit=/m.test(readIfExists(out)) && readIfExists(out), 60_000, 100);
    assert.match(text, /^berth demo image 1\.0$/m);
    assert.match(text, /^first-exit=5$/m);
    assert.match(text, /^second: berth demo image 1\.0$/m);
    assert.match(text, /^second-exit=0$/m);
    const startedAt = Date.now();
    startBerthd('n2');
    await waitServing('n2');
    t.diagnostic(`berthd serving ${Date.now() - startedAt} ms after its start`);
    writeFileSync(flag('resume'), '');
    const steps = await until(`job ${jobId}'s accounting on n2`, () => {
      const recs = accountingRecords('n2').filter((r) => r.JobID === jobId);
      return recs.some((r) => r.RecordType === 'job') && recs.filter((r) => r.RecordType === 'step');
    }, 120_000, 200);
    const byStep = new Map(steps.map((r) => [String(r.StepID), r]));
    assert.deepEqual([...byStep.keys()].sort(), ['0', '1'], JSON.stringify(steps));
    assert.deepEqual([byStep.get('0')!.State, byStep.get('0')!.ExitCode], ['FAILED', '5:0']);
    assert.deepEqual([byStep.get('1')!.State, byStep.get('1')!.ExitCode], ['COMPLETED', '0:0']);
    assert.deepEqual(byStep.get('1')!.Argv, ['sh', '-c', 'echo "second: $(cat /etc/berth-demo-release)"']);
    for (const r of steps) assert.ok(String(r.End) > String(r.Start), `step ${String(r.StepID)} has its own end: ${JSON.stringify(r)}`);
  });
});
