// The policy engine: one decision per request, for the AuthZ plugin (every Docker API request
// a job's user sends to dockerd) and for berthd itself (its own job containers and steps).
//
// Default deny. The policies that apply are those naming the user (or '*', which never
// stands for root) or one of the user's groups. A request is allowed when at least one of
// them allows the action and none denies it: a deny_actions entry or a payload violation of
// ANY applying policy denies, whatever another allows. Before the policies, berth's own
// rules (reported as policy 'berth') refuse what no site may allow: requests whose body berth
// cannot read as dockerd will, the Docker socket in a mount, berth's reserved container names
// and labels in a user's request, and settings smuggled where dockerd still reads them.
import { actionInfo } from '../docker-request/actions';
import { patternMatches } from './action-patterns';
import { BodyObject, type BodyValue, bodyFromPlain, display, goFold, lookup, parseBody } from '../docker-request/body';
import { parseFieldPath, type FieldPath } from '../docker-request/field-paths';
import { hostSourceOf, HostPaths, type ResolvePath } from './host-paths';
import { checkRule, checkUnsetFields, type RuleInput } from './payload-rules';
import { NoJobValue, PlaceholderValues } from './placeholders';
import { DEFAULT_SITE_LIMITS, siteLimitViolations, type SiteLimits } from './site-limits';
import { BUILTIN_POLICY, type Decision, type Policy, type PolicyContext, type PolicyRequest, type PolicySet, type Violation } from './policy-types';

export interface PolicyEngineOptions {
  /** realpath on the host, undefined when the path does not exist (realHostPath); without it bind paths are judged as written */
  resolvePath?: ResolvePath;
  /** host paths no container may mount, besides /var/run/docker.sock and /run/docker.sock */
  protectedPaths?: string[];
  /** the site's registries (the site rules' registries): {{registries}} of policies without their own */
  registries?: string[];
  /** the site's runtime, log, swap and pids settings for users' containers */
  site?: SiteLimits;
}

/** Actions whose body is their substance: without one berth can read, they are denied. */
const BODY_REQUIRED = new Set(['container_create', 'container_exec_create', 'container_update']);
const RESERVED_NAME_PREFIX = 'berth-';
const RESERVED_LABEL_PREFIX = 'io.berth.';
/** the two io.berth. labels a job user's own container carries: its job, and that it is the user's */
export const USER_LABELS = { job: 'io.berth.job.id', role: 'io.berth.role' } as const;

function path(text: string): FieldPath {
  return parseFieldPath(text) as FieldPath;
}

const MOUNT_FIELDS = ['HostConfig.Binds[*]', 'HostConfig.Mounts[*]', 'Binds[*]', 'Mounts[*]'].map(path);
const LABEL_KEYS = path('Labels.*');

function deny(policy: string, action: string, violations: Violation[] | string): Decision {
  if (typeof violations === 'string') return { allow: false, policy, action, reason: violations };
  return { allow: false, policy, action, reason: violations.map((v) => v.reason).join('; '), field: violations[0]?.field, violations };
}

/** `policy 'hpc-default' denies container_create: HostConfig.CapAdd=[SYS_ADMIN] is not allowed` */
export function formatDenial(d: Decision): string {
  return d.allow ? `policy '${d.policy}' allows ${d.action}` : `policy '${d.policy}' denies ${d.action}: ${d.reason}`;
}

export class PolicyEngine {
  private readonly paths: HostPaths;
  private readonly registries: readonly string[];
  private readonly site: SiteLimits;

  constructor(private readonly set: PolicySet, opts: PolicyEngineOptions = {}) {
    this.paths = new HostPaths(opts.resolvePath, opts.protectedPaths);
    this.registries = opts.registries ?? [];
    this.site = opts.site ?? DEFAULT_SITE_LIMITS;
  }

  get policySet(): PolicySet {
    return this.set;
  }

  /** Never throws: a request berth fails to judge is denied, saying so. */
  decide(req: PolicyRequest, ctx: PolicyContext): Decision {
    try {
      return this.judge(req, ctx);
    } catch (err) {
      return deny(BUILTIN_POLICY, req.action, `berth could not judge the request (${(err as Error).message}), and denies what it cannot judge`);
    }
  }

  private judge(req: PolicyRequest, ctx: PolicyContext): Decision {
    const info = actionInfo(req.action);
    if (!info) return deny(BUILTIN_POLICY, req.action, `'${req.action}' is not a Docker API action berth knows, and unknown requests are denied`);
    const action = info.name;

    let body: BodyValue | undefined;
    if (req.bodyText !== undefined && req.bodyText.trim() !== '') {
      try {
        body = req.docker ? req.docker.body : parseBody(req.bodyText);
      } catch (err) {
        return deny(BUILTIN_POLICY, action, `the request body is not JSON dockerd and berth read alike (${(err as Error).message}); berth denies what it cannot read`);
      }
    } else if (req.bodyText === undefined && req.body !== undefined) body = bodyFromPlain(req.body);
    if (BODY_REQUIRED.has(action)) {
      if (body === undefined) {
        return deny(BUILTIN_POLICY, action, 'the request reached berth without its body (dockerd passes none over 1 MiB, chunked, or not application/json), and berth denies what it cannot inspect: send a JSON body under 1 MiB');
      }
      if (!(body instanceof BodyObject)) return deny(BUILTIN_POLICY, action, `the request body must be a JSON object, not ${display(body, 40)}`);
    }
    const query = req.query ?? {};

    const builtin = this.builtinViolations(action, body, query, req, ctx);
    if (builtin.length) return deny(BUILTIN_POLICY, action, builtin);

    const applying = this.set.policies.filter((p) => applies(p, ctx));
    if (applying.length === 0) {
      return deny(BUILTIN_POLICY, action, `no policy applies to user '${ctx.user}' (berth denies every request no policy allows: ask the site's administrators)`);
    }

    for (const p of applying) {
      const hit = patternMatches(p.deny, action);
      if (hit) return deny(p.name, action, `${action} is denied by the policy (deny_actions '${hit.text}')`);
    }

    const allowing = applying.filter((p) => patternMatches(p.allow, action) && (!p.readonly || info.readonly));
    if (allowing.length === 0) {
      const readonlyMatch = applying.find((p) => p.readonly && patternMatches(p.allow, action));
      if (readonlyMatch) return deny(readonlyMatch.name, action, `the policy is read-only and ${action} is not a read (GET or HEAD) request`);
      const others = applying.length > 1 ? ` (nor do ${applying.slice(1).map((p) => `'${p.name}'`).join(', ')}, which also apply to '${ctx.user}')` : '';
      return deny(applying[0]!.name, action, `${action} is not among the actions the policy allows${others}`);
    }

    const input: RuleInput = { body, query, hostConfigAtTopLevel: action === 'container_create' };
    for (const p of applying) {
      const violations = this.payloadViolations(p, action, input, ctx);
      if (violations.length) return deny(p.name, action, violations);
    }
    // what the site sets for every user's container, after the policy's own (more specific) rules
    if (action === 'container_create' && body !== undefined && !req.agent) {
      const site = siteLimitViolations(body, ctx, this.site, req.stored === true);
      if (site.length) return deny(BUILTIN_POLICY, action, site);
    }
    return { allow: true, policy: allowing[0]!.name, action, reason: `allowed by policy '${allowing[0]!.name}'` };
  }

  private payloadViolations(p: Policy, action: string, input: RuleInput, ctx: PolicyContext): Violation[] {
    const values = new PlaceholderValues(ctx, p.registries ?? this.registries);
    const out = checkUnsetFields(p.unsetFields, input.body);
    const needJob: string[] = [];
    for (const rule of p.rules) {
      if (!patternMatches(rule.actions, action)) continue;
      try {
        out.push(...checkRule(rule, input, values, this.paths));
      } catch (err) {
        if (!(err instanceof NoJobValue)) throw err;
        needJob.push(rule.field.text);
      }
    }
    if (needJob.length) {
      out.push({ field: needJob[0]!, reason: `${needJob.join(', ')} cannot be checked without the user's job, and user '${ctx.user}' has no job on this node` });
    }
    return out;
  }

  /** What berth refuses whatever the policies say. */
  private builtinViolations(action: string, body: BodyValue | undefined, query: Record<string, string | string[]>, req: PolicyRequest, ctx: PolicyContext): Violation[] {
    const out: Violation[] = [];
    const mediaType = req.contentType?.split(';')[0]?.trim().toLowerCase();
    if (mediaType === 'application/x-www-form-urlencoded') {
      // dockerd's r.Form takes a form body's parameters over the query's, and the plugin never sees that body
      out.push({ field: 'Content-Type', reason: 'a form-encoded body is not allowed: dockerd would read parameters from it that berth cannot see; put them in the query' });
    }
    if (action === 'container_start' && body !== undefined && body !== null && !(body instanceof BodyObject && body.keys.length === 0)) {
      out.push({ field: 'body', reason: `a body on container_start is not allowed (dockerd applies it as the HostConfig for API versions before 1.24): give settings at container_create` });
    }
    if (!req.agent && (action === 'container_create' || action === 'container_rename')) {
      const names = query.name === undefined ? [] : Array.isArray(query.name) ? query.name : [query.name];
      for (const n of names) {
        if (n.replace(/^\//, '').toLowerCase().startsWith(RESERVED_NAME_PREFIX)) {
          out.push({ field: 'query parameter name', reason: `the container name ${n} is not allowed: names starting with ${RESERVED_NAME_PREFIX} are berth's job containers` });
        }
      }
    }
    if (action === 'container_create' && body !== undefined) {
      if (!req.agent) {
        // a user's container carries its job's label and the role 'user' (the job's Docker endpoint adds them); every other io.berth. label is berth's
        const jobLabel = (key: string): BodyValue | undefined => {
          const labels = body instanceof BodyObject ? body.get('Labels')?.value : undefined;
          if (!(labels instanceof BodyObject)) return undefined;
          // a map: keys are exact in Go; one written once, with no case variant beside it, has one value
          if (labels.keys.filter((k) => goFold(k) === goFold(key)).length !== 1 || !labels.keys.includes(key)) return undefined;
          return labels.get(key)?.value;
        };
        const own = (key: string): boolean => (key === USER_LABELS.job && ctx.job !== undefined && jobLabel(key) === ctx.job.jobId) || (key === USER_LABELS.role && jobLabel(key) === 'user');
        const reserved = lookup(body, LABEL_KEYS).filter((i) => typeof i.value === 'string' && i.value.toLowerCase().startsWith(RESERVED_LABEL_PREFIX) && !own(i.value));
        if (ctx.job && !own(USER_LABELS.job)) {
          out.push({ field: `Labels.${USER_LABELS.job}`, reason: `a container of job ${ctx.job.jobId} carries the labels ${USER_LABELS.job}=${ctx.job.jobId} and ${USER_LABELS.role}=user: give --label ${USER_LABELS.job}=${ctx.job.jobId} --label ${USER_LABELS.role}=user, or use the DOCKER_HOST berth set for the job, which adds them` });
        } else if (ctx.job && !own(USER_LABELS.role)) {
          out.push({ field: `Labels.${USER_LABELS.role}`, reason: `a job user's container carries the label ${USER_LABELS.role}=user: give --label ${USER_LABELS.role}=user` });
        }
        if (reserved.length) {
          const names = reserved.map((i) => i.value as string);
          const shown = names.length > 6 ? `${names.slice(0, 5).join(', ')}, … (${names.length} in all)` : names.join(', ');
          out.push({ field: reserved[0]!.path, reason: `the label${names.length > 1 ? 's' : ''} ${shown} ${names.length > 1 ? 'are' : 'is'} not allowed: labels starting with ${RESERVED_LABEL_PREFIX} are berth's own` });
        }
      }
      for (const f of MOUNT_FIELDS) {
        for (const item of lookup(body, f)) {
          const source = item.malformed ? undefined : hostSourceOf(item.value);
          const why = source === undefined ? undefined : this.paths.protectedReason(source);
          if (why) out.push({ field: item.path, reason: `${item.path}=${display(item.value)} is not allowed: ${why}` });
        }
      }
    }
    return out.filter((v, i) => out.findIndex((w) => w.reason === v.reason) === i);
  }
}

function applies(p: Policy, ctx: PolicyContext): boolean {
  if (p.users.includes(ctx.user)) return true;
  // root is only ever matched by name: '*' and groups are for job users
  if (ctx.user === 'root' || ctx.user === '') return false;
  return p.users.includes('*') || p.groups.some((g) => ctx.groups.includes(g));
}
