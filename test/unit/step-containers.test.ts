import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { StepContainers } from '../../services/agent/steps/step-containers';
import { TaskFiles } from '../../services/agent/steps/task-files';
import { BerthError } from '../../services/shared/errors';
import { DIGEST, harness, IMAGE, prologueInput } from './fakes/helpers';

const OTHER = '127.0.0.1:5000/berth/tools:1';
const OTHER_DIGEST = 'sha256:' + 'b'.repeat(64);

function setup() {
  const h = harness();
  h.engine.digests.set(OTHER, OTHER_DIGEST);
  const files = new TaskFiles(path.join(h.dir, 'run', 'n1', 'tasks'));
  const steps = new StepContainers({ factory: h.factory, ledger: h.ledger, table: h.table, engine: h.engine, files, node: 'n1', log: h.log });
  const step = (over: Partial<Parameters<StepContainers['prologue']>[0]> = {}) => ({ jobId: '42', stepId: '0', uid: 2001, gid: 2001, user: 'alice', image: '', argv: ['sh', '-c', 'true'], ...over });
  const taskFile = (stepId: string) => files.read('42', stepId) ?? '';
  return { h, files, steps, step, taskFile };
}

describe('containers of native steps', () => {
  it("joins the job's container when the step names the job's image or nothing, and writes the task file", async () => {
    const { h, steps, step, taskFile } = setup();
    h.engine.existingPaths.add('/w');
    const job = (await h.jobs.prologue(prologueInput({ options: { mounts: [], workdir: '/w', envNames: ['KEEP'], name: 'box' } }))).job;
    const res = await steps.prologue(step({ image: `127.0.0.1:5000/berth/demo@${DIGEST}` }));
    assert.deepEqual(res, { containerName: job.containerName, stepContainer: false, pullMillis: 0, imageDigest: job.imageDigest, warnings: [] });
    const text = taskFile('0');
    assert.match(text, new RegExp(`^pid=${process.pid}$`, 'm'));
    assert.match(text, /^start=[1-9]\d*$/m);
    assert.match(text, /^workdir=\/w$/m, "the job's --container-workdir");
    assert.match(text, /^env=PATH=\/usr\/local\/bin:\/usr\/bin:\/bin$/m);
    assert.match(text, /^env=SLURM_JOB_ID=42$/m);
    // the host's locale stays out: the image has none of it here, and the step names none
    for (const name of ['LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE']) assert.match(text, new RegExp(`^unset=${name}$`, 'm'));
    assert.equal((await steps.prologue(step({ stepId: '1', options: { mounts: [], workdir: '', envNames: [], name: 'box' } }))).stepContainer, false, 'by its name');
  });

  it('makes a step container for another image, records the step, and removes the container when the step ends', async () => {
    const { h, steps, step, taskFile, files } = setup();
    await h.jobs.prologue(prologueInput());
    const res = await steps.prologue(step({ image: OTHER }));
    assert.equal(res.stepContainer, true);
    assert.equal(res.containerName, 'berth-n1-job-42-step-0');
    const c = [...h.engine.containers.values()].find((x) => x.name === res.containerName)!;
    assert.equal(c.labels['io.berth.role'], 'step');
    assert.equal(c.labels['io.berth.step.id'], '0');
    assert.match(String(c.image), /tools/);
    assert.match(taskFile('0'), /^container=berth-n1-job-42-step-0$/m);
    const out = await steps.epilogue('42', '0', { exitCode: 3, signal: '' });
    assert.equal(out.containerRemoved, true);
    await h.factory.removed('42');
    assert.ok(![...h.engine.containers.values()].some((x) => x.name === res.containerName), 'removed at step end');
    assert.equal(files.read('42', '0'), undefined, 'task file gone');
    const rec = h.jobs.get('42')!.steps.find((s) => s.stepId === '0')!;
    assert.deepEqual([rec.state, rec.exitCode, rec.argv], ['EXITED', 3, ['sh', '-c', 'true']]);
  });

  it("answers a step's epilogue without looking up the container it made; one made before a restart is looked up by its name", async () => {
    const { h, steps, step } = setup();
    await h.jobs.prologue(prologueInput());
    const looked: string[] = [];
    const inspect = h.engine.inspect.bind(h.engine);
    h.engine.inspect = async (id: string) => {
      looked.push(id);
      return inspect(id);
    };
    const made = await steps.prologue(step({ image: OTHER }));
    looked.length = 0;
    assert.equal((await steps.epilogue('42', '0')).containerRemoved, true);
    assert.deepEqual(looked, [], 'no look-up on the way to the answer');
    await h.factory.removed('42');
    assert.ok(![...h.engine.containers.values()].some((x) => x.name === made.containerName), 'removed in the background');
    // berthd restarted between the step's prologue and its epilogue: nothing remembered
    const second = await steps.prologue(step({ stepId: '1', image: OTHER }));
    const node = h.newNode();
    const restarted = new StepContainers({ factory: node.factory, ledger: node.ledger, table: h.table, engine: h.engine, files: new TaskFiles(path.join(h.dir, 'run', 'n1', 'tasks')), node: 'n1', log: h.log });
    looked.length = 0;
    assert.equal((await restarted.epilogue('42', '1')).containerRemoved, true);
    assert.deepEqual(looked, [second.containerName]);
    await node.factory.removed('42');
    assert.ok(![...h.engine.containers.values()].some((x) => x.name === second.containerName));
    assert.equal((await restarted.epilogue('42', '1')).containerRemoved, false, 'gone: nothing to remove');
  });

  it('keeps a named step container for later steps, refuses another image under that name, and says when a name is unknown', async () => {
    const { steps, step, h } = setup();
    const named = { mounts: [], workdir: '', envNames: [], name: 'tools' };
    const first = await steps.prologue(step({ image: OTHER, options: named }));
    assert.equal(first.containerName, 'berth-n1-job-42-name-tools');
    await steps.epilogue('42', '0');
    await h.factory.removed('42');
    assert.ok([...h.engine.containers.values()].some((x) => x.name === first.containerName), 'kept');
    const again = await steps.prologue(step({ stepId: '1', options: named }));
    assert.equal(again.containerName, first.containerName);
    await assert.rejects(steps.prologue(step({ stepId: '2', image: IMAGE, options: named })), (e: unknown) => e instanceof BerthError && /runs .*tools@sha256:b+, not 127\.0\.0\.1:5000\/berth\/demo:1\.0/.test(e.message));
    await assert.rejects(steps.prologue(step({ stepId: '3', options: { ...named, name: 'nosuch' } })),
      (e: unknown) => e instanceof BerthError && e.code === 'NO_CONTAINER' && /no container named 'nosuch' on n1; make it first with srun --container-image=IMAGE --container-name=nosuch/.test(e.message));
  });

  it('refuses a batch step without a job container, and a malformed step id, making nothing', async () => {
    const { steps, step, h } = setup();
    await assert.rejects(steps.prologue(step({ stepId: 'batch' })), (e: unknown) => e instanceof BerthError && e.code === 'NO_CONTAINER');
    await assert.rejects(steps.prologue(step({ stepId: '1;rm' })), /is not a Slurm step id/);
    assert.equal(h.engine.containers.size, 0);
    assert.ok(!existsSync(path.join(h.dir, 'run', 'n1', 'tasks', '42.batch')));
  });

  it("the job's epilogue waits for step containers still being removed", async () => {
    const { h, steps, step } = setup();
    await h.jobs.prologue(prologueInput());
    await steps.prologue(step({ image: OTHER }));
    await steps.epilogue('42', '0');
    // the step container's removal is still under way: the job's epilogue is the one call
    const res = await h.jobs.epilogue('42');
    assert.equal(res.containersRemoved, 1, 'only the job container was left');
    assert.ok(readFileSync(h.config.accountingFile, 'utf8').includes('"StepID":"0"'));
  });

  it("holds the job's epilogue until an open native step's end arrives, so the step is recorded with its exit", async () => {
    const { h, steps, step } = setup();
    await h.jobs.prologue(prologueInput());
    await steps.prologue(step({ image: IMAGE }));
    let ended = false;
    const ending = h.jobs.epilogue('42').then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(ended, false, 'still waiting for the step end');
    assert.ok([...h.engine.containers.values()].some((c) => c.name === 'berth-n1-job-42'), 'nothing removed yet');
    await steps.epilogue('42', '0', { exitCode: 137, signal: 'SIGKILL' });
    await ending;
    const rec = h.accounting().find((r) => r.RecordType === 'step' && r.StepID === '0')!;
    assert.equal(rec.ExitCode, '0:9');
    assert.equal(rec.State, 'CANCELLED');
  });

  it('gives up waiting for a step end that never comes', async () => {
    const { h, steps, step } = setup();
    await h.jobs.prologue(prologueInput());
    await steps.prologue(step({ image: IMAGE }));
    const t0 = Date.now();
    await h.jobs.epilogue('42', { stepWaitMs: 200 });
    assert.ok(Date.now() - t0 >= 200 && Date.now() - t0 < 2_000);
    const rec = h.accounting().find((r) => r.RecordType === 'step' && r.StepID === '0')!;
    assert.equal(rec.State, 'CANCELLED', 'the step the job outlived is killed with it');
  });
});

describe('the environment a native step gets (task files)', () => {
  it("keeps the image's value of a --container-env name the host does not set, and the image's locale over the host's", () => {
    const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-taskenv-')), 'tasks');
    const files = new TaskFiles(dir);
    files.write('7', '0', { pid: process.pid, container: 'c', workdir: '', env: ['PATH=/bin', 'CUDA_VERSION=12.9.1', 'LANG=C.UTF-8'], keepEnv: ['HOME', 'CUDA_VERSION', 'LC_ALL'] });
    const text = files.read('7', '0') ?? '';
    assert.match(text, /^envdefault=CUDA_VERSION=12\.9\.1$/m, 'set only where the task has no CUDA_VERSION of its own');
    assert.match(text, /^env=LANG=C\.UTF-8$/m, "the image's locale wins");
    assert.doesNotMatch(text, /^unset=LANG$/m);
    assert.doesNotMatch(text, /^unset=LC_ALL$/m, 'named with --container-env: the host\'s value is kept');
    assert.match(text, /^unset=LANGUAGE$/m);
    assert.match(text, /^unset=LC_MESSAGES$/m);
  });
});
