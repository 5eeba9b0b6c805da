// The container factory: one request makes a job's or a step's container; a make that fails
// at create or start leaves nothing behind; what it made comes back as the values the
// container was given; a job's containers are stopped and removed side by side.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ContainerFactory, type ContainerRequest } from '../../services/agent/containers/container-factory';
import { ImageUserFilesCache } from '../../services/agent/containers/image-user-files';
import type { ContainerCreateSpec, ContainerDetails, ContainerEngine, ContainerSummary } from '../../services/agent/docker/engine';
import { BerthError } from '../../services/shared/errors';
import { FakeIdentities, harness, prologueInput } from './fakes/helpers';
import type { FakeEngine } from './fakes/fake-engine';

/**
 * The factory's view of the engine, and only that (ContainerEngine), over the fake dockerd;
 * create or start fails for the containers named in `failCreate` / `failStart`.
 */
class NarrowEngine implements ContainerEngine {
  readonly failCreate = new Set<string>();
  readonly failStart = new Set<string>();
  constructor(private readonly fake: FakeEngine) {}
  async create(spec: ContainerCreateSpec): Promise<string> {
    if (this.failCreate.has(spec.name)) throw new Error(`Conflict: the name ${spec.name} is in use`);
    return this.fake.create(spec);
  }
  async start(id: string): Promise<void> {
    const c = await this.fake.inspect(id);
    if (c && this.failStart.has(c.name)) throw new Error('OCI runtime create failed: no such file or directory');
    return this.fake.start(id);
  }
  inspect(id: string): Promise<ContainerDetails | undefined> { return this.fake.inspect(id); }
  listByLabel(label: string, value?: string): Promise<ContainerSummary[]> { return this.fake.listByLabel(label, value); }
  stop(id: string, grace: number): Promise<void> { return this.fake.stop(id, grace); }
  remove(id: string): Promise<void> { return this.fake.remove(id); }
  pathExists(id: string, file: string): Promise<boolean> { return this.fake.pathExists(id, file); }
  readFile(id: string, file: string): Promise<Buffer | undefined> { return this.fake.readFile(id, file); }
}

function setup() {
  // /dev/null stands for an RDMA device: a character device that exists everywhere
  const h = harness({ rdmaDevices: ['/dev/null', '/dev/infiniband/none*'] });
  const engine = new NarrowEngine(h.engine);
  const factory = new ContainerFactory({
    config: h.config, engine, images: h.images, imageUserFiles: new ImageUserFilesCache(h.engine, 'n1'), identities: new FakeIdentities(), log: h.log, memlockBytes: -1,
    reachable: (p) => p,
  });
  const job = (over: Partial<ContainerRequest> = {}): ContainerRequest => ({ ...prologueInput(), for: { role: 'job' }, ...over });
  const step = (stepId: string, over: Partial<ContainerRequest> = {}): ContainerRequest => ({ ...prologueInput(), workDir: '', for: { role: 'step', stepId }, ...over });
  const names = () => [...h.engine.containers.values()].map((c) => c.name).filter((n) => !n.includes('-probe-')).sort();
  return { h, engine, factory, job, step, names };
}

describe('the container factory', () => {
  it('makes the job container and returns the binds and devices it was given, as values', async () => {
    const { h, factory, job } = setup();
    const made = await factory.make(job(), h.log);
    assert.equal(made.name, 'berth-n1-job-42');
    const c = h.engine.containers.get(made.containerId)!;
    assert.equal(c.running, true);
    const hc = c.body.HostConfig as { Binds: string[]; Devices: { PathOnHost: string }[] };
    assert.deepEqual(made.mounts.map((m) => `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`), hc.Binds);
    const dir = path.join(h.config.stateDir, 'jobs', '42');
    assert.deepEqual(made.mounts.slice(0, 3), [
      { source: '/opt/berth/berth-init', target: '/.berth/init', readOnly: true },
      { source: `${dir}/passwd`, target: '/etc/passwd', readOnly: true },
      { source: `${dir}/group`, target: '/etc/group', readOnly: true },
    ]);
    assert.ok(made.mounts.some((m) => m.source === '/home/alice/run' && m.target === '/home/alice/run' && !m.readOnly), 'the working directory');
    assert.deepEqual(made.devices, ['/dev/null']);
    assert.deepEqual(hc.Devices.map((d) => d.PathOnHost), made.devices);
    assert.equal(made.dir, dir);
    assert.equal(made.identity.role, undefined);
    assert.equal(c.labels['io.berth.role'], 'job');
  });

  it('makes a step container from the same request type, named for the step, with its files beside the job\'s', async () => {
    const { h, factory, step } = setup();
    const made = await factory.make(step('3'), h.log);
    assert.equal(made.name, 'berth-n1-job-42-step-3');
    assert.equal(made.dir, path.join(h.config.stateDir, 'jobs', '42', 'berth-n1-job-42-step-3'));
    const c = h.engine.containers.get(made.containerId)!;
    assert.deepEqual([c.labels['io.berth.role'], c.labels['io.berth.step.id']], ['step', '3']);
    const named = await factory.make(step('4', { options: { mounts: [], workdir: '', envNames: [], name: 'tools' } }), h.log);
    assert.equal(named.name, 'berth-n1-job-42-name-tools');
  });

  it('leaves nothing when create fails', async () => {
    const { h, engine, factory, job, names } = setup();
    engine.failCreate.add('berth-n1-job-42');
    await assert.rejects(factory.make(job(), h.log), (e: unknown) => e instanceof BerthError && /name berth-n1-job-42 is in use/.test(e.message));
    assert.deepEqual(names(), []);
    assert.ok(!existsSync(path.join(h.config.stateDir, 'jobs', '42')), 'no per-container files left');
  });

  it('leaves nothing when start fails: the created container is removed', async () => {
    const { h, engine, factory, job, step, names } = setup();
    const made = await factory.make(job(), h.log);
    engine.failStart.add('berth-n1-job-42-step-0');
    await assert.rejects(factory.make(step('0'), h.log), (e: unknown) => e instanceof BerthError && /OCI runtime create failed/.test(e.message));
    assert.deepEqual(names(), ['berth-n1-job-42'], 'only the job container stays');
    assert.ok(!existsSync(path.join(made.dir, 'berth-n1-job-42-step-0')), 'the step container\'s files are gone');
    assert.ok(existsSync(path.join(made.dir, 'passwd')), 'the job container\'s files stay');
  });

  it('discards what it made when its caller fails after it', async () => {
    const { h, factory, job, names } = setup();
    const made = await factory.make(job(), h.log);
    await factory.discard(made);
    assert.deepEqual(names(), []);
    assert.ok(!existsSync(made.dir));
  });

  it('removes a step\'s own container at its end in the background, keeps a named one, and says when there was none', async () => {
    const { h, factory, job, step, names } = setup();
    await factory.make(job(), h.log);
    await factory.make(step('0'), h.log);
    await factory.make(step('1', { options: { mounts: [], workdir: '', envNames: [], name: 'tools' } }), h.log);
    assert.equal(await factory.removeStepContainer('42', '0', h.log), true);
    await factory.removed('42');
    assert.equal(await factory.removeStepContainer('42', '1', h.log), false, 'named: kept for the job');
    assert.deepEqual(names(), ['berth-n1-job-42', 'berth-n1-job-42-name-tools']);
  });

  it('stops and removes every container of the job side by side, after a step container still being removed, and no other job\'s', async () => {
    const { h, factory, job, step, names } = setup();
    await factory.make(job(), h.log);
    await factory.make(step('0'), h.log);
    await factory.make(step('1', { options: { mounts: [], workdir: '', envNames: [], name: 'tools' } }), h.log);
    await factory.make(job({ jobId: '43' }), h.log);
    const user = await h.engine.create({ name: 'alice-web', body: { Image: 'x', Labels: { 'io.berth.job.id': '42', 'io.berth.role': 'user' } } });
    const other = await h.engine.create({ name: 'berth-n2-job-42', body: { Image: 'x', Labels: { 'io.berth.job.id': '42', 'io.berth.node': 'n2', 'io.berth.role': 'job' } } });
    h.engine.calls.length = 0;
    // the step's epilogue has been answered; its container is still being removed
    assert.equal(await factory.removeStepContainer('42', '0', h.log), true);
    const removed = await factory.removeJobContainers('42', ['recorded-but-unlabelled'], h.log);
    assert.equal(removed.length, 4, 'job, named step, user\'s, and the recorded one');
    assert.ok(removed.includes(user) && !removed.includes(other));
    const ops = h.engine.calls.filter((c) => /^(stop|remove) /.test(c)).map((c) => c.split(' ')[0]);
    // the step container first (its own removal), then all the job's stops before any of their removals
    assert.deepEqual(ops, ['stop', 'remove', 'stop', 'stop', 'stop', 'stop', 'remove', 'remove', 'remove', 'remove']);
    assert.deepEqual(names(), ['berth-n1-job-43', 'berth-n2-job-42']);
  });
});
