// Checking one payload rule, or the seed forms' deny_payloads, against one request. Each
// violation names the field as the rule wrote it (with the element's index) and its value,
// says what would be allowed, and ends with the rule's hint when it has one:
//   HostConfig.CapAdd=[SYS_ADMIN] is not allowed
//   User=0 is not allowed: it must be 2001:2001 (run as yourself: docker run --user $(id -u):$(id -g))
import { type BodyItem, BodyNumber, type BodyValue, display, equalsPlain, findEverywhere, isSet, lookup } from '../docker-request/body';
import type { FieldPath } from '../docker-request/field-paths';
import { hostSourceOf, type HostPaths } from './host-paths';
import { registryViolation } from './image-registry';
import type { PlaceholderValues } from './placeholders';
import type { ListSource, NumberSource, PayloadRule, RuleValue, Violation } from './policy-types';

export interface RuleInput {
  body: BodyValue | undefined;
  query: Readonly<Record<string, string | string[]>>;
  /** container_create: dockerd before 25 also read HostConfig's fields from the body's top level */
  hostConfigAtTopLevel: boolean;
}

function plainText(v: unknown): string {
  if (typeof v === 'string') return v === '' ? "''" : v;
  return JSON.stringify(v);
}

function listOf(src: ListSource, values: PlaceholderValues): { items: unknown[]; globs: boolean } {
  if ('list' in src) return { items: src.list, globs: true };
  return { items: values.list(src.placeholder), globs: false };
}

function numberOf(src: NumberSource, values: PlaceholderValues): number {
  return 'number' in src ? src.number : values.number(src.placeholder);
}

/** A template always gives text: the fields it is for (User) are strings. */
function valueOf(v: RuleValue, values: PlaceholderValues): unknown {
  return 'literal' in v ? v.literal : values.text(v.template);
}

/** A literal string ending in `*` matches every string starting with what precedes it. */
function matchesAny(v: BodyValue | undefined, candidates: readonly unknown[], globs: boolean): boolean {
  return candidates.some((c) => {
    if (globs && typeof c === 'string' && c.endsWith('*') && typeof v === 'string') return v.startsWith(c.slice(0, -1));
    return equalsPlain(v, c);
  });
}

function describeList(items: readonly unknown[]): string {
  if (items.length === 0) return '(none)';
  const shown = items.slice(0, 8).map(plainText).join(', ');
  return items.length > 8 ? `${shown}, … (${items.length} in all)` : shown;
}

function queryItems(query: RuleInput['query'], name: string): BodyItem[] {
  const raw = query[name];
  const path = `query parameter ${name}`;
  if (raw === undefined) return [{ path, value: undefined }];
  const all = Array.isArray(raw) ? raw : [raw];
  if (new Set(all).size > 1) return [{ path, value: all, malformed: `${path} is given ${all.length} times with different values` }];
  return [{ path, value: all[0] }];
}

const numberValue = (v: BodyValue | undefined): number | undefined => (v instanceof BodyNumber ? v.value : undefined);

/** The effective CPU limit of a resources object: NanoCpus, or CpuQuota over CpuPeriod; -1 unlimited, 0 unset. */
function cpuLimit(item: BodyItem): { cpus: number; shown: string } | 'not-a-number' {
  const nano = item.value;
  const quota = item.parent?.get('CpuQuota')?.value;
  const period = item.parent?.get('CpuPeriod')?.value;
  for (const v of [nano, quota, period]) if (v !== undefined && v !== null && !(v instanceof BodyNumber)) return 'not-a-number';
  const n = numberValue(nano) ?? 0;
  const q = numberValue(quota) ?? 0;
  const p = numberValue(period) || 100_000;
  const field = item.path.replace(/NanoCpus$/i, '');
  if (n < 0 || q < 0) return { cpus: -1, shown: n < 0 ? `${item.path}=${display(nano)}` : `${field}CpuQuota=${display(quota)}` };
  const fromNano = n / 1e9;
  const fromQuota = q > 0 ? q / p : 0;
  if (fromQuota > fromNano) return { cpus: fromQuota, shown: `${field}CpuQuota=${display(quota)} with CpuPeriod ${p} (${fromQuota} CPUs)` };
  return { cpus: fromNano, shown: `${item.path}=${display(nano)} (${fromNano} CPUs)` };
}

export function checkRule(rule: PayloadRule, input: RuleInput, values: PlaceholderValues, paths: HostPaths): Violation[] {
  const out: Violation[] = [];
  const c = rule.condition;
  let note = '';
  const add = (field: string, reason: string): void => {
    out.push({ field, reason: `${reason}${note}${rule.hint ? ` (${values.text(rule.hint)})` : ''}` });
  };

  // limits the job does not have are not checked ("when the job has a limit")
  let limit = 0;
  if (c.kind === 'max' || c.kind === 'max_cpus') {
    limit = numberOf(c.limit, values);
    if (limit <= 0) return [];
  }

  const views: { items: BodyItem[]; required: boolean; note?: string }[] = [];
  if (rule.in === 'query') views.push({ items: queryItems(input.query, rule.field.segments[0]!.name), required: rule.required });
  else {
    views.push({ items: input.body === undefined ? [{ path: rule.field.text, value: undefined }] : lookup(input.body, rule.field), required: rule.required });
    const [first, ...rest] = rule.field.segments;
    if (input.hostConfigAtTopLevel && input.body !== undefined && rest.length && first!.name.toLowerCase() === 'hostconfig' && !first!.each) {
      const top: FieldPath = { ...rule.field, text: rule.field.text.slice(first!.name.length + 1), segments: rest };
      views.push({ items: lookup(input.body, top), required: false, note: ', outside HostConfig (where dockerd before 25 reads it too)' });
    }
  }

  for (const view of views) {
    const { items, required } = view;
    note = view.note ?? '';
    for (const item of items) if (item.malformed) add(item.path, `${item.malformed}`);
    const present = items.filter((i) => !i.malformed);

    if (c.kind === 'max_cpus') {
      for (const item of present) {
        const l = cpuLimit(item);
        if (l === 'not-a-number') add(item.path, `${item.path} and its CpuQuota and CpuPeriod must be numbers`);
        else if (l.cpus < 0) add(item.path, `${l.shown} means no CPU limit: it must be at most ${limit} CPUs`);
        else if (l.cpus === 0 && required) add(item.path, `${item.path} is not set (no CPU limit): it must be at most ${limit * 1e9} (${limit} CPUs), or CpuQuota at most ${limit} × CpuPeriod`);
        else if (l.cpus > limit) add(item.path, `${l.shown} is not allowed: it must be at most ${limit} CPUs (${item.path} ${limit * 1e9})`);
      }
      continue;
    }

    if (required && !present.some((i) => isSet(i.value))) {
      const shownPath = present[0]?.path.replace(/\[\d+\]$/, '') ?? rule.field.text;
      add(shownPath, `${shownPath} is not set: ${requirement(rule, values, limit)}`);
      continue;
    }

    for (const item of present) {
      const v = item.value;
      if (v === undefined || v === null) continue;
      // what is not set (false, 0, '', empty) is what dockerd does by default: only deny and deny_values look at it
      if (!isSet(v) && c.kind !== 'deny' && c.kind !== 'deny_values') continue;
      const shown = `${item.path}=${display(v)}`;
      switch (c.kind) {
        case 'deny':
          if (c.mode === 'present' || isSet(v)) add(item.path, `${shown} is not allowed`);
          break;
        case 'deny_values':
          if (matchesAny(v, c.values, true)) add(item.path, `${shown} is not allowed`);
          break;
        case 'equals': {
          const want = valueOf(c.value, values);
          if (!equalsPlain(v, want)) add(item.path, `${shown} is not allowed: it must be ${plainText(want)}`);
          break;
        }
        case 'one_of': {
          const { items: allowed, globs } = listOf(c.values, values);
          if (!matchesAny(v, allowed, globs)) add(item.path, `${shown} is not allowed: it must be one of ${describeList(allowed)}`);
          break;
        }
        case 'includes': {
          const { items: wanted, globs } = listOf(c.values, values);
          if (!Array.isArray(v)) add(item.path, `${shown} is not a list`);
          else if (!v.some((el) => matchesAny(el, wanted, globs))) add(item.path, `${shown} is not allowed: it must include ${wanted.map(plainText).join(' or ')}`);
          break;
        }
        case 'max': {
          const n = numberValue(v);
          if (n === undefined) add(item.path, `${shown} is not a number`);
          else if (n < 0) add(item.path, `${shown} means no limit: it must be between 1 and ${limit}`);
          else if (n > limit) add(item.path, `${shown} is not allowed: it must be at most ${limit}`);
          break;
        }
        case 'registry_in': {
          if (typeof v !== 'string') {
            add(item.path, `${shown} is not an image reference`);
            break;
          }
          const why = registryViolation(v, listOf(c.registries, values).items.map(String));
          if (why) add(item.path, `${shown} is not allowed: ${why}`);
          break;
        }
        case 'bind_under': {
          const source = hostSourceOf(v);
          if (source === undefined) break;
          const why = paths.check(source, listOf(c.prefixes, values).items.map(String));
          if (why) add(item.path, `${shown} is not allowed: ${why}`);
          break;
        }
      }
    }
  }
  return out;
}

function requirement(rule: PayloadRule, values: PlaceholderValues, limit: number): string {
  const c = rule.condition;
  switch (c.kind) {
    case 'equals':
      return `it must be ${plainText(valueOf(c.value, values))}`;
    case 'one_of':
      return `it must be one of ${describeList(listOf(c.values, values).items)}`;
    case 'includes':
      return `it must include ${listOf(c.values, values).items.map(plainText).join(' or ')}`;
    case 'max':
      return `unset means no limit; it must be between 1 and ${limit}`;
    case 'registry_in':
      return `it must be an image from ${listOf(c.registries, values).items.join(', ')}`;
    case 'bind_under':
      return `it must be under ${listOf(c.prefixes, values).items.join(', ')}`;
    default:
      return 'it must be given';
  }
}

/** deny_payloads / excl_payloads: a bare name at any depth, a dotted path from the top. */
export function checkUnsetFields(fields: readonly FieldPath[], body: BodyValue | undefined): Violation[] {
  if (body === undefined) return [];
  const out: Violation[] = [];
  for (const f of fields) {
    const single = f.segments.length === 1 && !f.segments[0]!.each && !f.keys;
    const items = single ? findEverywhere(body, f.segments[0]!.name) : lookup(body, f);
    for (const i of items) {
      if (i.malformed) out.push({ field: i.path, reason: i.malformed });
      else if (isSet(i.value)) out.push({ field: i.path, reason: `${i.path}=${display(i.value)} is not allowed` });
    }
  }
  return out;
}
