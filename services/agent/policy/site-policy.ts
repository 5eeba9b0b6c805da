// The site policy as berthd uses it: the policy file (reloaded on change and on SIGHUP), an
// engine for the policies in force, and the two ways in: a Docker API request as dockerd's
// AuthZ plugin sees it (docker-request/request.ts: method, RequestURI, body, Content-Type), and a request berthd
// itself is about to make for a job (its job container, its steps).
import type { Logger } from '../logger';
import { type MappedAction, mapAction } from '../docker-request/actions';
import type { DockerRequest } from '../docker-request/request';
import { formatDenial, PolicyEngine, type PolicyEngineOptions } from './engine';
import { PolicyStore, type PolicyStoreOptions } from './policy-store';
import { BUILTIN_POLICY, type Decision, type PolicyContext, type PolicySet } from './policy-types';

export class SitePolicy {
  private readonly store: PolicyStore;
  private engine: { set: PolicySet; engine: PolicyEngine } | undefined;

  constructor(file: string, log: Logger, private readonly opts: PolicyEngineOptions & PolicyStoreOptions = {}) {
    this.store = new PolicyStore(file, log, opts);
  }

  /** Loads the file; throws PolicyError naming every problem. */
  load(): void {
    this.store.load();
  }

  /** Reloads when the file changes (SIGHUP is the caller's: wire it to reload()). */
  watch(): void {
    this.store.watch();
  }

  reload(): boolean {
    return this.store.reload();
  }

  /** The site's registries ({{registries}} of policies without their own), e.g. after the site rules were reloaded. */
  setRegistries(registries: readonly string[]): void {
    this.opts.registries = [...registries];
    this.engine = undefined;
  }

  close(): void {
    this.store.close();
  }

  mapAction(method: string, uri: string): MappedAction | undefined {
    return mapAction(method, uri);
  }

  /** A request through dockerd, decoded once (docker-request/request.ts): its query and body as dockerd reads them. */
  decide(request: DockerRequest, ctx: PolicyContext): Decision {
    const { action, query } = request;
    if (!query) return { allow: false, policy: BUILTIN_POLICY, action, reason: "the query string is malformed (a bad % escape or a ';'), and dockerd would read it differently" };
    return this.current().decide({ action, bodyText: request.bodyText, docker: request, query, contentType: request.contentType }, ctx);
  }

  /** A request berthd makes itself for the job in ctx, judged by the same policies; berth's reserved names and labels are its own. */
  admit(action: string, body: unknown, ctx: PolicyContext, query: Record<string, string> = {}): Decision {
    return this.current().decide({ action, body, query, agent: true }, ctx);
  }

  /** A container as dockerd stored it (authz/stored-body.ts), judged as the create that would make it, before it starts. */
  judgeStored(body: Record<string, unknown>, ctx: PolicyContext, name: string): Decision {
    return this.current().decide({ action: 'container_create', body, query: { name }, stored: true }, ctx);
  }

  formatDenial(d: Decision): string {
    return formatDenial(d);
  }

  private current(): PolicyEngine {
    const set = this.store.current();
    if (this.engine?.set !== set) this.engine = { set, engine: new PolicyEngine(set, this.opts) };
    return this.engine.engine;
  }
}
