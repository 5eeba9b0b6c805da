// Docker access for a job's user: at the prologue the node CA issues them a client
// certificate (CN = user, the job id in the subject, valid until the job's end) into a
// directory only they can read; their steps get DOCKER_HOST, DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH so that `docker ps/run/exec/logs/rm` work inside the allocation. The
// epilogue removes the directory; from then on the AuthZ plugin refuses the certificate
// anyway, because its job no longer runs.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { IssuedClientCertificate, NodeCertificateAuthority } from '../certs/node-ca';
import { BerthError } from '../../shared/errors';
import { removeJobClientBundle, writeJobClientBundle } from '../certs/job-bundle';
import type { Logger } from '../logger';
import type { ContainerDefaults } from './container-defaults';
import { type JobEndpoint, startJobEndpoint } from './job-docker-endpoint';

export interface DockerTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export class DockerAccess {
  /** each job's Docker endpoint (job-docker-endpoint.ts), by job id */
  private readonly endpoints = new Map<string, Promise<JobEndpoint>>();
  /** the job's values a user's container create leaves out (set once the AuthZ plugin knows the jobs) */
  private defaultsFor: ((jobId: string) => Promise<ContainerDefaults | undefined>) | undefined;

  constructor(
    private readonly ca: NodeCertificateAuthority,
    /** where job bundles go: RUN_DIR/NODE/jobs/<id> (the parent must be traversable by users) */
    private readonly jobsDir: string,
    /** host:port where dockerd listens with --tlsverify */
    private readonly tlsAddress: string,
    private readonly log: Logger,
  ) {
    mkdirSync(jobsDir, { recursive: true, mode: 0o755 });
  }

  /** Writes dockerd's server certificate (for --tlscacert/--tlscert/--tlskey) into dir. */
  static async writeServerFiles(ca: NodeCertificateAuthority, dir: string, node: string): Promise<DockerTlsFiles> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const files = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server-key.pem') };
    const issued = await ca.issueServerCertificate({ commonName: `dockerd ${node}`, days: 365 });
    writeFileSync(files.ca, ca.certPem, { mode: 0o644 });
    writeFileSync(files.cert, issued.certPem, { mode: 0o644 });
    writeFileSync(files.key, issued.keyPem, { mode: 0o600 });
    return files;
  }

  bundleDir(jobId: string): string {
    return path.join(this.jobsDir, jobId);
  }

  /**
   * The job user's certificate, made but not handed out (nothing is written): the prologue has it
   * made while dockerd creates and starts the job's container (5-13 ms of key generation and
   * signing that would follow the start otherwise), and gives it to grant.
   */
  issue(job: { jobId: string; user: string; uid: number }, notAfter: Date): Promise<IssuedClientCertificate> {
    return this.ca.issueClientCertificate({ user: job.user, uid: job.uid, jobId: job.jobId, notAfter });
  }

  /** Hands the job's user their certificate (made now, or by issue before) and serves the job's Docker endpoint. */
  async grant(job: { jobId: string; user: string; uid: number; gid: number }, notAfter: Date, made?: Promise<IssuedClientCertificate>): Promise<void> {
    const issued = await (made ?? this.issue(job, notAfter));
    // made before the container started, it may have run out since (the job cancelled meanwhile):
    // the same refusal issuing it now would give
    if (issued.notAfter.getTime() <= Date.now()) {
      throw new BerthError('JOB_NOT_RUNNING', `Docker client certificate for job ${job.jobId}: the job's end (${issued.notAfter.toISOString()}) is already past; a certificate would be born expired`);
    }
    writeJobClientBundle(this.bundleDir(job.jobId), { caPem: this.ca.certPem, certPem: issued.certPem, keyPem: issued.keyPem }, { uid: job.uid, gid: job.gid });
    this.log.info('issued the job user a Docker client certificate', { job: job.jobId, user: job.user, serial: issued.serial, notAfter: issued.notAfter.toISOString() });
    await this.open(job);
  }

  /** Where the job endpoints learn a job's values for the containers its user makes. */
  useDefaults(fn: (jobId: string) => Promise<ContainerDefaults | undefined>): void {
    this.defaultsFor = fn;
  }

  /** Serves the job's Docker endpoint (again, after a restart of berthd) while its certificate is there. */
  async open(job: { jobId: string; uid: number; gid: number }): Promise<void> {
    if (this.endpoints.has(job.jobId) || !existsSync(this.bundleDir(job.jobId))) return;
    const started = startJobEndpoint({
      socket: this.endpointSocket(job.jobId), jobId: job.jobId, uid: job.uid, gid: job.gid, certDir: this.bundleDir(job.jobId), dockerTls: this.tlsAddress, log: this.log,
      defaults: () => this.defaultsFor?.(job.jobId) ?? Promise.resolve(undefined),
    });
    this.endpoints.set(job.jobId, started);
    try {
      await started;
    } catch (err) {
      this.endpoints.delete(job.jobId);
      throw err;
    }
  }

  revoke(jobId: string): void {
    const ep = this.endpoints.get(jobId);
    this.endpoints.delete(jobId);
    void ep?.then((e) => e.close(), () => undefined);
    removeJobClientBundle(this.bundleDir(jobId));
  }

  endpointSocket(jobId: string): string {
    return path.join(this.jobsDir, `${jobId}.docker.sock`);
  }

  /** DOCKER_HOST for the job's tasks (its endpoint); certPath for direct TLS to dockerd */
  connection(jobId: string): { host: string; certPath: string; tls: string } {
    return { host: `unix://${this.endpointSocket(jobId)}`, certPath: this.bundleDir(jobId), tls: `tcp://${this.tlsAddress}` };
  }

  env(jobId: string): string[] {
    return [`DOCKER_HOST=${this.connection(jobId).host}`];
  }
}
