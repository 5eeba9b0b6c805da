// The policy engine's vocabulary: what a loaded policy is, what a request and its caller
// are, and what a decision says. See docs/policy.md for the file format these come from.
import type { FieldPath } from '../docker-request/field-paths';
import type { DockerRequest } from '../docker-request/request';

/** The policy name of what berth refuses whatever the site's policies say. */
export const BUILTIN_POLICY = 'berth';

/** Who is asking, and for which job. */
export interface PolicyContext {
  /** the identity: the TLS certificate's CN; 'root' for dockerd's local root socket */
  user: string;
  /** the user's group names (from NSS; the caller resolves them) */
  groups: string[];
  /** the user's job on this node; without one, rules that need its values deny */
  job?: {
    jobId: string;
    uid: number;
    gid: number;
    /** CPUs of the job on this node; 0 when Slurm gave no figure (CPU rules then do not apply) */
    cpus: number;
    /** memory of the job on this node; 0 when Slurm gave no limit (memory rules then do not apply) */
    memoryBytes: number;
    /** host device paths the job may use */
    devices: string[];
    /** the job's CPUs and NUMA memory nodes on this node (Linux numbering), when known */
    cpuset?: { cpus: string; mems: string };
    /** host directories under which the job may bind-mount */
    mountPrefixes: string[];
    /** the user's supplementary group ids; with gid they make {{gids}} */
    groupIds?: number[];
    /** named volumes the job's user created in their running jobs on this node */
    volumes?: string[];
  };
}

export interface PolicyRequest {
  /** from mapAction, or what berthd itself is about to do ('container_create', 'exec_create') */
  action: string;
  /**
   * The body exactly as dockerd received it (dockerd's AuthZ RequestBody). The engine reads it
   * the way dockerd does (keys without regard to case, duplicates merged); undefined when
   * dockerd sent none, which for container_create, exec_create and container_update denies.
   */
  bodyText?: string;
  /** the request through dockerd whose body this is, decoded once for every part of berth that reads it; its body is read instead of bodyText's */
  docker?: DockerRequest;
  /** a body berthd built itself, as a plain object; ignored when bodyText is given */
  body?: unknown;
  /** query parameters, each decoded once; give every value of a repeated key (parseQuery) */
  query?: Record<string, string | string[]>;
  /** the request's Content-Type header, when it came through dockerd */
  contentType?: string;
  /** true when berthd makes the request for its own job container or step: berth's reserved names and labels are then allowed */
  agent?: boolean;
  /** the body is a container as dockerd stored it (before its start), not a request */
  stored?: boolean;
}

export interface Violation {
  field: string;
  reason: string;
}

export interface Decision {
  allow: boolean;
  /** the policy that allowed or denied; 'berth' for what berth itself refuses whatever the policies say */
  policy: string;
  /** the action's name (an alias given in the request is reported by its name) */
  action: string;
  reason: string;
  /** the first offending field, when a field was the reason */
  field?: string;
  /** every offending field of the denying policy, in rule order */
  violations?: Violation[];
}

/** Values a rule may take from the request's context with {{name}}. */
export const PLACEHOLDERS = ['uid', 'gid', 'gids', 'devices', 'mount_prefixes', 'cpus', 'memory_bytes', 'registries'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export const LIST_PLACEHOLDERS: readonly Placeholder[] = ['gids', 'devices', 'mount_prefixes', 'registries'];
export const NUMBER_PLACEHOLDERS: readonly Placeholder[] = ['uid', 'gid', 'cpus', 'memory_bytes'];

/** A rule value as written: a literal, or text with {{placeholders}} in it. */
export type RuleValue = { literal: unknown } | { template: string; uses: Placeholder[] };
/** A list as written, or one list placeholder ({{devices}}). */
export type ListSource = { list: unknown[] } | { placeholder: Placeholder };
/** A number as written, or one number placeholder ({{memory_bytes}}). */
export type NumberSource = { number: number } | { placeholder: Placeholder };

export type Condition =
  | { kind: 'deny'; mode: 'present' | 'nonempty' }
  | { kind: 'deny_values'; values: unknown[] }
  | { kind: 'equals'; value: RuleValue }
  | { kind: 'one_of'; values: ListSource }
  | { kind: 'includes'; values: ListSource }
  | { kind: 'bind_under'; prefixes: ListSource }
  | { kind: 'max'; limit: NumberSource }
  | { kind: 'max_cpus'; limit: NumberSource }
  | { kind: 'registry_in'; registries: ListSource };

export type ConditionKind = Condition['kind'];
export const CONDITION_KINDS: readonly ConditionKind[] = ['deny', 'deny_values', 'equals', 'one_of', 'includes', 'bind_under', 'max', 'max_cpus', 'registry_in'];

/** A compiled action name, glob or regular expression; matches an action by its name or an alias. */
export interface ActionPattern {
  text: string;
  /** the action names (not aliases) it matches */
  matches: ReadonlySet<string>;
}

export interface PayloadRule {
  /** where it was written, for messages: payload_rules[3] */
  where: string;
  field: FieldPath;
  in: 'body' | 'query';
  actions: ActionPattern[];
  required: boolean;
  hint?: string;
  condition: Condition;
  /** the placeholders it uses */
  uses: Placeholder[];
}

export interface Policy {
  name: string;
  /** file:line, file[index] or file: where the policy was read */
  origin: string;
  description?: string;
  users: string[];
  groups: string[];
  allow: ActionPattern[];
  deny: ActionPattern[];
  readonly: boolean;
  /** deny_payloads and excl_payloads: fields that must be unset, by name at any depth or by path */
  unsetFields: FieldPath[];
  rules: PayloadRule[];
  /** the policy's own registries for {{registries}}; undefined: the site's (the engine's registries option) */
  registries?: string[];
}

export interface PolicySet {
  source: string;
  policies: readonly Policy[];
}
