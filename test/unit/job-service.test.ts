import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import type { IssuedClientCertificate } from '../../services/agent/certs/node-ca';
import { JobService } from '../../services/agent/jobs/job-service';
import { JobTable } from '../../services/agent/jobs/job-table';
import { BerthError } from '../../services/shared/errors';
import { harness, prologueInput } from './fakes/helpers';

describe('job prologue', () => {
  it("pulls, writes the job's passwd and group, creates, starts, and records the job", async () => {
    const h = harness();
    const res = await h.jobs.prologue(prologueInput());
    assert.equal(res.alreadyPrepared, false);
    assert.equal(res.job.state, 'RUNNING');
    assert.equal(res.job.containerName, 'berth-n1-job-42');
    const c = h.engine.containers.get(res.job.containerId)!;
    assert.equal(c.running, true);
    const jobDir = path.join(h.config.stateDir, 'jobs', '42');
    const binds = (c.body.HostConfig as { Binds: string[] }).Binds;
    assert.ok(binds.includes(`${jobDir}/passwd:/etc/passwd:ro`) && binds.includes(`${jobDir}/group:/etc/group:ro`), binds.join(' '));
    assert.match(readFileSync(`${jobDir}/passwd`, 'utf8'), /^root:x:0:0.*\nalice:x:2001:2001:Alice:\/home\/alice:\/bin\/sh\n$/s);
    assert.match(readFileSync(`${jobDir}/group`, 'utf8'), /berth-demo:x:2100:alice/);
    assert.equal(h.engine.containers.size, 1, 'the probe container that read the image files is gone');
    assert.deepEqual(h.jobs.list().map((j) => j.jobId), ['42']);
    assert.ok(existsSync(path.join(h.config.stateDir, 'jobs', '42.json')));
  });

  it("runs without a working directory its user cannot open, and says why where the user reads it", async () => {
    const h = harness();
    const told: string[] = [];
    const jobs = new (h.jobs.constructor as typeof import('../../services/agent/jobs/job-service').JobService)({
      ...(h.jobs as unknown as { d: ConstructorParameters<typeof import('../../services/agent/jobs/job-service').JobService>[0] }).d,
      tellUser: async (_id, text) => void told.push(text),
    });
    const res = await jobs.prologue(prologueInput({ workDir: '/home/bob/unreachable/proj' }));
    const c = h.engine.containers.get(res.job.containerId)!;
    const binds = (c.body.HostConfig as { Binds: string[] }).Binds;
    assert.ok(!binds.some((b) => b.includes('/home/bob')), binds.join(' '));
    assert.equal((c.body as { WorkingDir: string }).WorkingDir, '/');
    assert.match(res.job.warnings?.[0] ?? '', /^berth: warning: job 42 runs without its working directory in the container: the working directory \/home\/bob\/unreachable\/proj: uid 2001 may not enter/);
    assert.deepEqual(told, res.job.warnings);
  });

  it('tells the user when slurmctld could not be asked for the allocation: no GPUs, no CPU binding', async () => {
    const why = 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)';
    const h = harness({}, { allocations: { allocation: async () => undefined, unreachable: () => why } });
    const res = await h.jobs.prologue(prologueInput());
    assert.equal(res.job.warnings?.length, 1);
    assert.match(res.job.warnings![0]!, /^berth: warning: job 42 runs on n1 without its GPUs and not bound to its CPUs: slurmctld could not be asked for its allocation when its container was made \(slurm_load_jobs error: Unable to contact slurm controller \(connect failure\)\)/);
    const answered = harness({}, { allocations: { allocation: async () => ({ cpus: 1, memoryBytes: 0, cpuIds: '0', gpuIndexes: [] }), unreachable: () => why } });
    assert.equal((await answered.jobs.prologue(prologueInput())).job.warnings, undefined);
    const unknown = harness({}, { allocations: { allocation: async () => undefined, unreachable: () => undefined } });
    assert.equal((await unknown.jobs.prologue(prologueInput())).job.warnings, undefined, 'Slurm answered that it has no such job: nothing to tell');
  });

  it('passes the RDMA devices that exist and skips the missing ones', async () => {
    const h = harness();
    mkdirSync(path.join(h.dir, 'dev'));
    const res = await h.jobs.prologue(prologueInput());
    const hc = h.engine.containers.get(res.job.containerId)!.body.HostConfig as { Devices: unknown[] };
    assert.deepEqual(hc.Devices, []); // the pattern matched no character device
  });

  it('is harmless when repeated, and shares one run when concurrent', async () => {
    const h = harness();
    const [a, b] = await Promise.all([h.jobs.prologue(prologueInput()), h.jobs.prologue(prologueInput())]);
    assert.equal(a.job.containerId, b.job.containerId);
    const again = await h.jobs.prologue(prologueInput());
    assert.equal(again.alreadyPrepared, true);
    assert.equal(h.engine.calls.filter((c) => c.startsWith('create berth-n1-job')).length, 1);
    await h.jobs.prologue(prologueInput({ jobId: '43' }));
    assert.equal(h.engine.calls.filter((c) => c.includes('-probe-')).length, 1, 'the image files are read once per digest');
  });

  it('refuses a root job and makes nothing', async () => {
    const h = harness();
    await assert.rejects(h.jobs.prologue(prologueInput({ uid: 0 })), (e: unknown) => e instanceof BerthError && e.code === 'ROOT_JOB_REFUSED' && /may not run as root/.test(e.message));
    assert.deepEqual(h.engine.calls, []);
  });

  it('removes the half-made container when starting fails', async () => {
    const h = harness();
    h.engine.failOn.set('start', new Error('OCI runtime create failed: bad mount'));
    await assert.rejects(h.jobs.prologue(prologueInput()), (e: unknown) => e instanceof BerthError && /could not create or start the container.*bad mount/.test(e.message));
    assert.equal(h.engine.containers.size, 0);
    assert.equal(h.jobs.list().length, 0);
    assert.ok(!existsSync(path.join(h.config.stateDir, 'jobs', '42')), 'no per-job files left');
  });

  it('replaces a stale container left under the job name', async () => {
    const h = harness();
    const first = await h.jobs.prologue(prologueInput());
    h.engine.containers.get(first.job.containerId)!.running = false;
    const second = await h.jobs.prologue(prologueInput());
    assert.notEqual(second.job.containerId, first.job.containerId);
    assert.equal(h.engine.containers.size, 1);
  });
});

describe("the job user's Docker certificate at the prologue", () => {
  /** a JobService over the harness with Docker access whose issue and grant are logged among the engine's calls */
  function withAccess(notAfter: Date = new Date(Date.now() + 3_600_000)) {
    const h = harness();
    const granted: string[] = [];
    const dockerAccess = {
      issue: async (job: { jobId: string }): Promise<IssuedClientCertificate> => {
        h.engine.calls.push(`issue ${job.jobId}`);
        return { certPem: 'CERT', keyPem: 'KEY', serial: '01', notBefore: new Date(), notAfter };
      },
      grant: async (job: { jobId: string }, _end: Date, issued?: Promise<IssuedClientCertificate>) => {
        if (!issued) throw new Error('grant was not given the certificate issue made');
        await issued;
        h.engine.calls.push(`grant ${job.jobId}`);
        granted.push(job.jobId);
      },
      revoke: () => undefined,
    };
    const jobs = new JobService({ config: h.config, engine: h.engine, factory: h.factory, ledger: h.ledger, table: h.table, accounting: new AccountingLog(h.config.accountingFile), log: h.log, dockerAccess });
    return { h, jobs, granted };
  }

  it('is made while dockerd creates the container, and handed out only once it has started', async () => {
    const { h, jobs, granted } = withAccess();
    const res = await jobs.prologue(prologueInput());
    const calls = h.engine.calls.filter((c) => /^(issue|create berth-n1-job-42$|start|grant)/.test(c));
    assert.deepEqual(calls, ['issue 42', 'create berth-n1-job-42', `start ${res.job.containerId}`, 'grant 42']);
    assert.deepEqual(granted, ['42']);
  });

  it('is not handed out when the container does not start', async () => {
    const { h, jobs, granted } = withAccess();
    h.engine.failOn.set('start', new Error('OCI runtime create failed'));
    await assert.rejects(jobs.prologue(prologueInput()));
    assert.deepEqual(granted, []);
    assert.equal(h.engine.containers.size, 0);
  });

  it('made ahead but run out by the time the container started (the job cancelled meanwhile): the container is removed', async () => {
    const { h, jobs } = withAccess(new Date(Date.now() - 1000));
    // the real grant refuses such a certificate (authz/docker-access.ts); this one stands for it
    const real = (jobs as unknown as { d: { dockerAccess: { grant: (...a: unknown[]) => Promise<void> } } }).d.dockerAccess;
    real.grant = async (_job, _end, issued) => {
      const c = await (issued as Promise<IssuedClientCertificate>);
      if (c.notAfter.getTime() <= Date.now()) throw new BerthError('JOB_NOT_RUNNING', 'born expired');
    };
    await assert.rejects(jobs.prologue(prologueInput()), /could not grant Docker access: born expired/);
    assert.equal(h.engine.containers.size, 0);
  });
});

describe("the job's file for its steps", () => {
  it('is written after the prologue has answered; the epilogue and the next prologue wait for it', async () => {
    const h = harness();
    const events: string[] = [];
    let publish!: () => void;
    const tasks = {
      removeJob: () => events.push('removeJob'),
      withdrawJob: () => events.push('withdraw'),
      publishJob: () => (events.includes('published') ? Promise.resolve() : new Promise<void>((resolve) => {
        events.push('publish begun');
        publish = () => {
          events.push('published');
          resolve();
        };
      })),
    };
    const jobs = new JobService({ config: h.config, engine: h.engine, factory: h.factory, ledger: h.ledger, table: h.table, accounting: new AccountingLog(h.config.accountingFile), log: h.log, tasks });
    const res = await jobs.prologue(prologueInput());
    assert.equal(res.job.state, 'RUNNING');
    assert.deepEqual(events, ['publish begun'], 'the prologue answered before the file was written');
    let again = false;
    const second = jobs.prologue(prologueInput()).then((r) => {
      again = true;
      return r;
    });
    const ending = jobs.epilogue('42', { stepWaitMs: 0 });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(again, false, 'the next prologue waits for the file');
    assert.ok(!events.includes('withdraw') && !events.includes('removeJob'), events.join(', '));
    publish();
    await second;
    await ending;
    assert.equal(events[1], 'published');
  });
});

describe('job epilogue', () => {
  it('stops and removes the job containers, writes a job record and a step record, and forgets the job', async () => {
    const h = harness();
    const { job } = await h.jobs.prologue(prologueInput({ account: 'physics', partition: 'batch' }));
    const step = h.ledger.start('42', { stepId: '0', taskId: 0, argv: ['id'], startTime: new Date().toISOString() })!;
    await h.ledger.end('42', step, { state: 'EXITED', exitCode: 3 });
    const res = await h.jobs.epilogue('42');
    assert.deepEqual(res, { containersRemoved: 1, wasKnown: true });
    assert.ok(h.engine.calls.includes(`stop ${job.containerId}`));
    assert.equal(h.engine.containers.size, 0);
    const [rec, stepRec, ...rest] = h.accounting();
    assert.equal(rest.length, 0);
    assert.equal(rec!.RecordType, 'job');
    assert.equal(rec!.JobID, '42');
    assert.equal(rec!.StepID, null);
    assert.equal(rec!.UID, 2001);
    assert.equal(rec!.User, 'alice');
    assert.equal(rec!.Account, 'physics');
    assert.equal(rec!.Partition, 'batch');
    assert.equal(rec!.NodeList, 'n1');
    assert.equal(rec!.ImageDigest, job.imageDigest);
    assert.equal(rec!.Registry, '127.0.0.1:5000');
    assert.equal(rec!.Pulled, true);
    assert.equal(typeof rec!.StartLatencySeconds, 'number');
    // the container's binds as the spec made them (more may come from the user's options and the site)
    const mounts = rec!.Mounts as { Source: string; Target: string; ReadOnly: boolean }[];
    for (const m of [
      { Source: '/opt/berth/berth-init', Target: '/.berth/init', ReadOnly: true },
      { Source: path.join(h.config.stateDir, 'jobs', '42', 'passwd'), Target: '/etc/passwd', ReadOnly: true },
      { Source: path.join(h.config.stateDir, 'jobs', '42', 'group'), Target: '/etc/group', ReadOnly: true },
      { Source: '/home/alice/run', Target: '/home/alice/run', ReadOnly: false },
    ]) assert.ok(mounts.some((x) => x.Source === m.Source && x.Target === m.Target && x.ReadOnly === m.ReadOnly), `${JSON.stringify(m)} in ${JSON.stringify(mounts)}`);
    assert.equal(rec!.State, 'FAILED', 'a step failed');
    assert.equal(rec!.ExitCode, '3:0');
    // three reads of the fake cgroup: step start (1.5 s), step end (3 s), epilogue (4.5 s)
    assert.equal(rec!.TotalCPUSeconds, 4.5);
    assert.equal(rec!.MaxRSSBytes, 13 * 1024 * 1024);
    assert.equal(rec!.UsageSource, 'cgroup-v2');
    assert.equal(stepRec!.RecordType, 'step');
    assert.equal(stepRec!.StepID, '0');
    assert.equal(stepRec!.ExitCode, '3:0');
    assert.equal(stepRec!.State, 'FAILED');
    assert.equal(stepRec!.TotalCPUSeconds, 1.5, "the container's CPU between the step's start and end");
    assert.equal(stepRec!.MaxRSSBytes, 12 * 1024 * 1024);
    assert.equal(stepRec!.PullBytes, null, 'pull figures are on the job record only');
    assert.deepEqual(stepRec!.Argv, ['id']);
    assert.equal(h.jobs.get('42'), undefined);
    assert.ok(!existsSync(path.join(h.config.stateDir, 'jobs', '42.json')));
  });

  it('is harmless when repeated', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    await h.jobs.epilogue('42');
    assert.deepEqual(await h.jobs.epilogue('42'), { containersRemoved: 0, wasKnown: false });
    assert.equal(h.accounting().length, 1);
  });

  it('marks steps still running as killed', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    h.ledger.start('42', { stepId: '1', taskId: 0, argv: ['sleep', '100'], startTime: new Date().toISOString() });
    await h.jobs.epilogue('42');
    const [job, step] = h.accounting();
    assert.equal(step!.State, 'CANCELLED');
    assert.equal(step!.ExitCode, '0:9', 'SIGKILL, as sacct prints a signal');
    assert.equal(job!.State, 'CANCELLED');
  });

  it('still accounts the job when its cgroup cannot be read, with null figures', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    h.usage.fail = true;
    await h.jobs.epilogue('42');
    const [job] = h.accounting();
    assert.equal(job!.TotalCPUSeconds, null);
    assert.equal(job!.MaxRSSBytes, null);
    assert.equal(job!.UsageSource, '');
    assert.equal(job!.State, 'COMPLETED');
    assert.equal(job!.ExitCode, '0:0');
  });

  it('keeps the account and pull figures across an agent restart', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput({ account: 'chem' }));
    const fresh = h.newJobService(new JobTable(h.config.stateDir));
    await fresh.recover();
    await fresh.epilogue('42');
    const [job] = h.accounting();
    assert.equal(job!.Account, 'chem');
    assert.equal(job!.Pulled, true);
  });
});

describe('recovery after a restart', () => {
  it('rebuilds the table from labels and keeps the checkpointed steps', async () => {
    const h = harness();
    await h.jobs.prologue(prologueInput());
    const s = h.ledger.start('42', { stepId: '0', taskId: 0, argv: ['true'], startTime: 'x' })!;
    await h.ledger.end('42', s, { state: 'EXITED', exitCode: 0 });
    const fresh = h.newJobService(new JobTable(h.config.stateDir));
    assert.deepEqual(await fresh.recover(), { recovered: 1, unknown: 0 });
    const job = fresh.get('42')!;
    assert.equal(job.user, 'alice');
    assert.equal(job.state, 'RUNNING');
    assert.deepEqual(job.steps.map((x) => x.exitCode), [0]);
  });
});

describe('--container-workdir missing from the image', () => {
  it("fails the job with the reason and leaves no container, instead of dockerd making the directory as root", async () => {
    const h = harness();
    await assert.rejects(h.jobs.prologue(prologueInput({ options: { mounts: [], workdir: '/missing', envNames: [], name: '' } })), (err: BerthError) => {
      assert.equal(err.code, 'WORKDIR_MISSING');
      assert.match(err.message, /^job 42: --container-workdir \/missing: No such file or directory in image 127\.0\.0\.1:5000\/berth\/demo:1\.0 nor in a mount; give a directory the image has/);
      return true;
    });
    assert.equal(h.engine.containers.size, 0, 'the created container is removed');
    h.engine.existingPaths.add('/work');
    const ok = await h.jobs.prologue(prologueInput({ jobId: '43', options: { mounts: [], workdir: '/work', envNames: [], name: '' } }));
    assert.equal(ok.job.state, 'RUNNING');
    const made = [...h.engine.containers.values()];
    assert.equal(made.length, 1, 'the container the directory was looked for in is removed');
    assert.equal(made[0]!.body.WorkingDir, '/work', "the job's container starts in the --container-workdir");
  });
});
