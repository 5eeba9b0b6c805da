// Decides every Docker API request that reaches the AuthZ plugin. Identity: the TLS client
// certificate's CN (dockerd's `User`) plus the job id berth put in that certificate; a
// request with no user came over dockerd's unix socket, which only root can open. A user may
// act only while the job of their certificate runs on this node, only on containers of
// their own running jobs, and only as the site policy allows.
import type { JobRecord } from '../jobs/job-record';
import type { Logger } from '../logger';
import type { AuditSink } from './audit-log';
import type { AuthzAnswer, AuthzRequest } from './plugin-protocol';
import { ownerFilterProblem } from './owner-filter';
import { apiVersionProblem, DEFAULT_MIN_API_VERSION, framingProblem } from './request-framing';
import type { MappedAction } from '../docker-request/actions';
import { DockerRequest } from '../docker-request/request';
import type { Decision as PolicyVerdict, PolicyContext as JobPolicyContext } from '../policy/policy-types';

// the policy module's own types: the authorizer passes them through
export type { MappedAction } from '../docker-request/actions';
export type { Decision as PolicyVerdict, PolicyContext as JobPolicyContext } from '../policy/policy-types';

/** What the authorizer needs from the rest of berthd; main.ts wires the real ones. */
export interface AuthorizerDeps {
  node: string;
  mapAction(method: string, uri: string): MappedAction | undefined;
  /** uri: dockerd's RequestUri, for the query; contentType: the request's Content-Type */
  /** the request decoded once (docker-request/request.ts): the same object goes to the image and effect gates */
  decide(request: DockerRequest, ctx: JobPolicyContext): PolicyVerdict;
  formatDenial(v: PolicyVerdict): string;
  jobFromCertificate(pem: string): { user: string; jobId: string } | undefined;
  jobs: { get(jobId: string): JobRecord | undefined; list(): JobRecord[]; addUserContainer(jobId: string, containerId: string): void; addUserVolume(jobId: string, name: string): void };
  /** after the policy allowed: what dockerd made, judged before it runs (effect-gate.ts); why not, or undefined */
  effects?: { check(request: DockerRequest, ctx: JobPolicyContext): Promise<string | undefined> };
  /** the job's policy context: groups, allocation, devices, mount prefixes */
  contextFor(job: JobRecord): Promise<JobPolicyContext>;
  /** the container's full id and the berth job in its labels, undefined when there is no such container */
  container(idOrName: string): Promise<{ id: string; jobId?: string } | undefined>;
  execContainer(execId: string): Promise<string | undefined>;
  /** why a container_create's image may not be used by uid (private to other users), or undefined */
  imageRefusal?(request: DockerRequest, uid: number): Promise<string | undefined>;
  /** the oldest API version (/vX.Y/ in the path) job users may use; default DEFAULT_MIN_API_VERSION */
  minApiVersion?: string;
  audit: AuditSink;
  /** counts every decision by result (metrics/agent-metrics.ts) */
  metrics?: { authzDecision(allow: boolean): void };
  log: Logger;
  now?: () => Date;
}

export class Authorizer {
  constructor(private readonly d: AuthorizerDeps) {}

  async request(req: AuthzRequest): Promise<AuthzAnswer> {
    const mapped = this.d.mapAction(req.method, req.uri);
    const action = mapped?.action ?? 'unknown';
    const finish = (allow: boolean, user: string, job: string, policy: string, reason: string, msg?: string): AuthzAnswer => {
      this.d.audit.write({
        time: (this.d.now?.() ?? new Date()).toISOString(), node: this.d.node, user, job, action, method: req.method, uri: req.uri, allow, policy, reason,
      });
      this.d.metrics?.authzDecision(allow);
      return allow ? { Allow: true } : { Allow: false, Msg: msg ?? reason };
    };

    if (req.user === '' && req.authnMethod === '') {
      // no TLS identity: dockerd's unix socket, which is root's alone on a berth node
      return finish(true, 'root', '', '', 'local root socket');
    }
    const cert = req.peerCertificates.length ? this.d.jobFromCertificate(req.peerCertificates[0]!) : undefined;
    if (!cert || cert.user !== req.user) {
      return finish(false, req.user, '', '', `user '${req.user}' presented no berth job certificate; use the DOCKER_CERT_PATH berth set up for your job`);
    }
    const job = this.d.jobs.get(cert.jobId);
    if (!job || job.state !== 'RUNNING' || job.user !== cert.user) {
      return finish(false, req.user, cert.jobId, '', `user '${req.user}' has no running job ${cert.jobId} on node ${this.d.node}: Docker access ends with the job`);
    }
    if (!mapped) {
      return finish(false, req.user, job.jobId, '', `${req.method} ${req.uri.split('?')[0]} is not an API endpoint berth allows`);
    }
    const framing = framingProblem(req) ?? apiVersionProblem(mapped.apiVersion, this.d.minApiVersion ?? DEFAULT_MIN_API_VERSION);
    if (framing) return finish(false, req.user, job.jobId, 'berth', framing, `berth denies ${mapped.action}: ${framing}`);
    if (mapped.action === 'container_list' || mapped.action === 'docker_events' || mapped.action === 'volume_list') {
      const why = ownerFilterProblem(req.uri, job.jobId);
      if (why) return finish(false, req.user, job.jobId, 'berth', why, `berth denies ${mapped.action}: ${why}`);
    }
    const owned = await this.ownership(mapped, job);
    if (owned !== true) return finish(false, req.user, job.jobId, '', owned);

    const ctx = await this.d.contextFor(job);
    const request = new DockerRequest({ method: req.method, uri: req.uri, body: req.body, contentType: req.headers['content-type'] }, mapped);
    const verdict = this.d.decide(request, ctx);
    if (verdict.allow && mapped.action === 'container_create' && this.d.imageRefusal) {
      const refused = await this.d.imageRefusal(request, job.uid);
      if (refused) return finish(false, req.user, job.jobId, 'berth', refused);
    }
    if (verdict.allow && this.d.effects) {
      const refused = await this.d.effects.check(request, ctx);
      if (refused) return finish(false, req.user, job.jobId, 'berth', refused);
    }
    return finish(verdict.allow, req.user, job.jobId, verdict.policy, verdict.reason, verdict.allow ? undefined : this.d.formatDenial(verdict));
  }

  /** After the request: containers a user creates become part of their job. */
  async response(req: AuthzRequest): Promise<AuthzAnswer> {
    const mapped = this.d.mapAction(req.method, req.uri);
    if (mapped?.action === 'volume_create' && (req.responseStatus === 201 || req.responseStatus === 200) && req.user !== '' && req.responseBody) {
      const cert = req.peerCertificates.length ? this.d.jobFromCertificate(req.peerCertificates[0]!) : undefined;
      let name: unknown;
      try {
        name = (JSON.parse(req.responseBody) as { Name?: unknown }).Name;
      } catch {
        name = undefined;
      }
      const taken = this.d.jobs.list().some((j) => typeof name === 'string' && j.uid !== this.d.jobs.get(cert?.jobId ?? '')?.uid && (j.userVolumes ?? []).includes(name));
      if (cert && typeof name === 'string' && name !== '' && !taken) {
        this.d.jobs.addUserVolume(cert.jobId, name);
        this.d.log.info('volume created by the job user joins the job', { job: cert.jobId, volume: name, user: req.user });
      }
    }
    if (mapped?.action === 'container_create' && req.responseStatus === 201 && req.user !== '' && req.responseBody) {
      const cert = req.peerCertificates.length ? this.d.jobFromCertificate(req.peerCertificates[0]!) : undefined;
      let id: unknown;
      try {
        id = (JSON.parse(req.responseBody) as { Id?: unknown }).Id;
      } catch {
        id = undefined;
      }
      if (cert && typeof id === 'string' && /^[a-f0-9]{64}$/.test(id)) {
        this.d.jobs.addUserContainer(cert.jobId, id);
        this.d.log.info('container created by the job user joins the job', { job: cert.jobId, container: id, user: req.user });
      }
    }
    return { Allow: true };
  }

  /** true, or why not: the container (or exec's container) must belong to one of the user's running jobs. */
  private async ownership(mapped: MappedAction, job: JobRecord): Promise<true | string> {
    let ref = mapped.containerId;
    if (mapped.execId) {
      ref = await this.d.execContainer(mapped.execId);
      if (!ref) return `exec ${mapped.execId} does not exist on node ${this.d.node}`;
    }
    if (!ref) return true;
    const c = await this.d.container(ref);
    if (!c) return `container ${ref} does not exist on node ${this.d.node}`;
    const mine = this.d.jobs.list().filter((j) => j.uid === job.uid && j.state === 'RUNNING');
    if (mine.some((j) => j.jobId === c.jobId || j.userContainers.includes(c.id))) return true;
    return `container ${ref} does not belong to your running jobs on node ${this.d.node}`;
  }
}
