// An in-memory Engine for unit tests: records calls, holds containers and images, and can be
// told to fail at a given step.
import { PassThrough, type Duplex } from 'node:stream';
import type {
  ContainerCreateSpec, ContainerDetails, ContainerSummary, Engine, ExecCreateOptions, ExecHandle, PullOptions,
} from '../../../services/agent/docker/engine';

interface FakeContainer extends ContainerDetails {
  body: Record<string, unknown>;
  files: Map<string, Buffer>;
}

export class FakeEngine implements Engine {
  readonly calls: string[] = [];
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Set<string>();
  digests = new Map<string, string>();
  pullDelayMs = 0;
  failOn = new Map<string, Error>();
  imageFiles = new Map<string, Buffer>([['/etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\n')]]);
  private seq = 0;

  private maybeFail(op: string): void {
    const e = this.failOn.get(op);
    if (e) throw e;
  }

  async resolveDigest(ref: string): Promise<string> {
    this.calls.push(`resolve ${ref}`);
    this.maybeFail('resolve');
    const d = this.digests.get(ref);
    if (!d) throw Object.assign(new Error(`manifest unknown: ${ref}`), { statusCode: 404 });
    return d;
  }

  /** digest refs the registry refuses to this fake's callers, whatever their credentials */
  readonly deniedDigests = new Set<string>();
  readonly accessChecks: string[] = [];

  async checkAccess(ref: string, digest: string, auth?: { username?: string }): Promise<void> {
    this.accessChecks.push(`${ref}@${digest} ${auth?.username ?? 'anonymous'}`);
    this.maybeFail('resolve');
    if (this.deniedDigests.has(digest)) throw Object.assign(new Error('registry refused anonymous access (HTTP 401)'), { authRefused: true });
  }

  async imagePresent(ref: string): Promise<boolean> {
    return this.images.has(ref);
  }

  async imageId(ref: string): Promise<string | undefined> {
    return this.images.has(ref) ? `sha256:${Buffer.from(ref).toString('hex').slice(0, 64).padEnd(64, '0')}` : undefined;
  }

  readonly pullAuths: string[] = [];

  async pull(ref: string, _opts: PullOptions, _progress?: unknown, auth?: { username?: string; source?: string }): Promise<void> {
    this.calls.push(`pull ${ref}`);
    this.pullAuths.push(auth ? `${auth.username} from ${auth.source}` : 'anonymous');
    if (!auth && [...this.deniedDigests].some((d) => ref.endsWith(d))) throw new Error('unauthorized: authentication required');
    await new Promise((r) => setTimeout(r, this.pullDelayMs));
    this.maybeFail('pull');
    this.images.add(ref);
  }

  async create(spec: ContainerCreateSpec): Promise<string> {
    this.calls.push(`create ${spec.name}`);
    this.maybeFail('create');
    for (const c of this.containers.values()) if (c.name === spec.name) throw Object.assign(new Error('Conflict'), { statusCode: 409 });
    const id = `c${++this.seq}`.padEnd(64, '0');
    this.containers.set(id, {
      id, name: spec.name, labels: (spec.body.Labels as Record<string, string>) ?? {}, state: 'created', created: Math.floor(Date.now() / 1000),
      running: false, startedAt: '', image: String(spec.body.Image), body: spec.body, files: new Map(this.imageFiles),
      nanoCpus: Number((spec.body.HostConfig as { NanoCpus?: number } | undefined)?.NanoCpus ?? 0),
      memoryBytes: Number((spec.body.HostConfig as { Memory?: number } | undefined)?.Memory ?? 0),
      devices: ((spec.body.HostConfig as { Devices?: { PathOnHost: string }[] } | undefined)?.Devices ?? []).map((d) => d.PathOnHost),
      pid: 0, env: ['PATH=/usr/local/bin:/usr/bin:/bin', ...((spec.body.Env as string[] | undefined) ?? [])],
    });
    // as dockerd does at create: a WorkingDir the image lacks is made (as root)
    const wd = spec.body.WorkingDir;
    if (typeof wd === 'string' && wd !== '') this.madeWorkingDirs.set(id, wd);
    return id;
  }

  /** the WorkingDir each container's create made, as dockerd makes a missing one */
  madeWorkingDirs = new Map<string, string>();

  async start(id: string): Promise<void> {
    this.calls.push(`start ${id}`);
    this.maybeFail('start');
    const c = this.find(id);
    if (!c) throw Object.assign(new Error('no such container'), { statusCode: 404 });
    c.running = true;
    c.state = 'running';
    c.pid = process.pid;
  }

  private find(idOrName: string): FakeContainer | undefined {
    return this.containers.get(idOrName) ?? [...this.containers.values()].find((c) => c.name === idOrName);
  }

  async inspect(id: string): Promise<ContainerDetails | undefined> {
    return this.find(id);
  }

  async listByLabel(label: string, value?: string): Promise<ContainerSummary[]> {
    return [...this.containers.values()].filter((c) => label in c.labels && (value === undefined || c.labels[label] === value));
  }

  async stop(id: string, _grace: number): Promise<void> {
    this.calls.push(`stop ${id}`);
    const c = this.find(id);
    if (c) {
      c.running = false;
      c.state = 'exited';
    }
  }

  async remove(id: string): Promise<void> {
    this.calls.push(`remove ${id}`);
    const c = this.find(id);
    if (c) this.containers.delete(c.id);
  }

  existingPaths = new Set(['/', '/tmp']);

  async pathExists(id: string, file: string): Promise<boolean> {
    return this.existingPaths.has(file) || this.madeWorkingDirs.get(this.find(id)?.id ?? id) === file;
  }

  async readFile(id: string, file: string): Promise<Buffer | undefined> {
    return this.find(id)?.files.get(file);
  }

  execs: {
    containerId: string; opts: ExecCreateOptions; stream: Duplex; exitCode: number | null; pid: number;
    /** window sizes the step runner set, in order; resizeError makes the next resize fail */
    resizes: [number, number][]; resizeError?: Error;
  }[] = [];

  async execContainerId(execId: string): Promise<string | undefined> {
    const n = Number(execId.replace(/^exec/, ''));
    return this.execs[n - 1]?.containerId;
  }

  async createExec(containerId: string, opts: ExecCreateOptions): Promise<ExecHandle> {
    const rec: FakeEngine['execs'][number] = { containerId, opts, stream: new PassThrough() as Duplex, exitCode: null, pid: 4242, resizes: [] };
    this.execs.push(rec);
    return {
      id: `exec${this.execs.length}`,
      start: async () => rec.stream,
      inspect: async () => ({ pid: rec.pid, running: rec.exitCode === null, exitCode: rec.exitCode }),
      resize: async (rows, cols) => {
        await new Promise((r) => setImmediate(r));
        const err = rec.resizeError;
        rec.resizeError = undefined;
        if (err) throw err;
        rec.resizes.push([rows, cols]);
      },
    };
  }
}
