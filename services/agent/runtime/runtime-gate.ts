// berthd's side of berth-runc (scripts/native/berth-runc.c): a root-only unix socket on which
// the runtime asks, before `runc create`, about the bundle dockerd wrote. berthd knows whose
// container it is from its own records — never from the spec or the container's labels — and
// cannot ask dockerd (dockerd holds the container's lock while it starts it). A container of
// no job (root's own on this node) passes unchanged.
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../logger';
import type { JobCgroups, JobCpuset, JobLimits } from './job-cgroups';
import { checkSpec, type ContainerOwner, type SpecContext } from './oci-spec-check';
import { writeFileAtomic } from '../../shared/atomic-write';
import { within } from '../../shared/within';

export interface KnownOwner extends ContainerOwner {
  limits: JobLimits;
  /** the device nodes the job's containers may have, when the teller knew them */
  devices?: readonly string[];
}

/** How long the gate waits on Slurm for what its teller did not know: containerd gives up on a create soon after. */
const SLURM_WAIT_MS = 2_000;


/** Owners of containers about to be created or started, told by the job service and the AuthZ effect gate. */
export class ContainerOwners {
  private readonly expected = new Map<string, KnownOwner>();

  constructor(
    /** the job table's view: whose container this is, for containers berthd was not told about (restarts by dockerd, berthd restarted) */
    private readonly fallback: (containerId: string) => Promise<KnownOwner | undefined> = async () => undefined,
  ) {}

  expect(containerId: string, owner: KnownOwner): void {
    this.expected.set(containerId, owner);
  }

  forgetJob(jobId: string): void {
    for (const [id, o] of this.expected) if (o.jobId === jobId) this.expected.delete(id);
  }

  async of(containerId: string): Promise<KnownOwner | undefined> {
    return this.expected.get(containerId) ?? this.fallback(containerId);
  }
}

export interface RuntimeGateDeps {
  socket: string;
  node: string;
  owners: ContainerOwners;
  cgroups: JobCgroups;
  /** the job's CPUs and memory nodes on this node from Slurm (Linux numbering); undefined when Slurm cannot say */
  jobCpuset?: (jobId: string) => Promise<JobCpuset | undefined>;
  /** dockerd's data-root, once known */
  dataRoot: () => string | undefined;
  berthFiles: readonly string[];
  /** the device nodes the job's containers may have on this node (devices/job-devices.ts) */
  jobDevices: (jobId: string) => Promise<readonly string[]>;
  /** the node's devices every job has (its HCAs): what a job gets while Slurm cannot tell its GPUs */
  nodeDevices: () => readonly string[];
  pinRoot: string;
  log: Logger;
}

const MAX_SPEC_BYTES = 16 * 1024 * 1024;

/** the same namespace as berthd's own (the host's): same device and inode */
function isHostNetns(file: string): boolean {
  try {
    const a = statSync(file);
    const b = statSync('/proc/self/ns/net');
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

export class RuntimeGate {
  private server: net.Server | undefined;

  constructor(private readonly d: RuntimeGateDeps) {}

  async start(): Promise<void> {
    mkdirSync(path.dirname(this.d.socket), { recursive: true, mode: 0o755 });
    mkdirSync(this.d.pinRoot, { recursive: true, mode: 0o700 });
    chmodSync(this.d.pinRoot, 0o700);
    rmSync(this.d.socket, { force: true });
    const server = net.createServer((conn) => this.serve(conn));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.d.socket, () => resolve());
    });
    chmodSync(this.d.socket, 0o600);
    this.server = server;
    this.d.log.info('runtime gate listening', { socket: this.d.socket });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      rmSync(this.d.socket, { force: true });
    });
  }

  private serve(conn: net.Socket): void {
    let text = '';
    conn.setEncoding('utf8');
    conn.setTimeout(30_000, () => conn.destroy());
    conn.on('error', () => undefined);
    conn.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 16384) conn.destroy();
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      const line = text.slice(0, nl);
      text = '';
      void this.answer(line).then((a) => conn.end(a), (err: unknown) => {
        this.d.log.error('runtime gate failed; refusing the container', { request: line, error: String(err) });
        conn.end(`DENY berthd could not judge the container (${String(err).replace(/\n/g, ' ')})\n`);
      });
    });
  }

  /**
   * The job's cpuset: the one its cgroup already has (set at its first container; it outlives a
   * berthd restart), else Slurm's. Unknown only while Slurm cannot be asked and the job has no
   * container yet: the container then runs on the node's CPUs, bounded in count by its CPU quota.
   */
  private async cpusetOf(owner: KnownOwner, log: Logger): Promise<JobCpuset | undefined> {
    const told = owner.limits.cpuset;
    // null: the teller asked Slurm a moment ago and got nothing; do not hold the create up asking again
    const cpuset = told ?? this.d.cgroups.cpusetOf(owner.jobId) ?? (told === null || !this.d.jobCpuset ? undefined : await within(this.d.jobCpuset(owner.jobId), SLURM_WAIT_MS));
    if (!cpuset && this.d.jobCpuset) log.warn('the job\'s CPUs on this node are not known (Slurm did not answer); its container runs on all of the node\'s CPUs, bounded by its CPU quota');
    return cpuset;
  }

  /** The answer berth-runc reads: PIN lines, then OK or DENY. */
  async answer(line: string): Promise<string> {
    const m = /^CREATE ([0-9a-f]{64}) (\/[^\n]*)$/.exec(line);
    if (!m) return 'DENY berth-runc sent a request berthd does not understand\n';
    const [, id, bundle] = m as unknown as [string, string, string];
    if (path.basename(bundle) !== id || bundle.split('/').includes('..')) return `DENY the bundle ${bundle} is not container ${id}'s\n`;
    const owner = await this.d.owners.of(id);
    if (!owner) return 'OK\n'; // no job's: root's own container on this node
    const dataRoot = this.d.dataRoot();
    if (!dataRoot) return 'DENY berthd does not know dockerd\'s data-root yet; try again in a moment\n';
    const file = path.join(bundle, 'config.json');
    const raw = readFileSync(file);
    if (raw.length > MAX_SPEC_BYTES) return `DENY the container's OCI spec is over ${MAX_SPEC_BYTES} bytes\n`;
    const spec = JSON.parse(raw.toString('utf8')) as unknown;
    const log = this.d.log.child({ job: owner.jobId, container: id, role: owner.role });
    // what the teller did not say, asked of Slurm side by side, each for at most SLURM_WAIT_MS
    const [cpuset, jobDevices] = await Promise.all([
      this.d.cgroups.supported ? this.cpusetOf(owner, log) : undefined,
      owner.devices ?? within(this.d.jobDevices(owner.jobId), SLURM_WAIT_MS).then((d) => d ?? this.d.nodeDevices()),
    ]);
    const ctx: SpecContext = {
      owner,
      containerId: id,
      dataRoot,
      berthFiles: this.d.berthFiles,
      pinDir: path.join(this.d.pinRoot, id),
      cgroupPath: this.d.cgroups.supported ? this.d.cgroups.pathFor(owner.jobId, id) : undefined,
      jobDevices,
      isHostNetns,
      ...(cpuset ? { cpuset } : {}),
    };
    const verdict = checkSpec(spec, ctx);
    if (verdict.problems.length) {
      log.warn('runtime gate refused a container', { problems: verdict.problems });
      return `DENY container ${id.slice(0, 12)} of job ${owner.jobId} may not run: ${verdict.problems.join('; ')}\n`;
    }
    if (this.d.cgroups.supported) this.d.cgroups.ensure(owner.jobId, { ...owner.limits, cpuset: cpuset ?? null });
    writeFileAtomic(file, JSON.stringify(verdict.spec), { mode: 0o600 });
    const gids = [...new Set([owner.gid, ...owner.gids])].join(',') || '-';
    const lines = verdict.pins.map((p) => {
      if (/[\n\0]/.test(p.source)) throw new Error(`the host path ${JSON.stringify(p.source)} holds a newline`);
      return `PIN ${owner.uid} ${owner.gid} ${gids} ${p.target} ${p.source}\n`;
    });
    log.debug('runtime gate admitted a container', { pins: verdict.pins.length });
    return `${lines.join('')}OK\n`;
  }
}
