// Reading a policy file: a JSON array of policies, a single policy object, or one policy per
// line (JSON lines, the authz-broker form). Every problem is collected and reported at once,
// each naming the file, the line (JSON lines) or index (array), the policy and the key:
//   policies.jsonl:3: policy 'p3': actions[1] '(' is not a valid regular expression: …
// Unknown keys, duplicate keys, action names berth does not know and fields Docker does not
// have are all errors: in a policy a typo must not quietly allow or fail to deny.
import { compileActionPattern } from './action-patterns';
import { closeMatches } from './close-matches';
import { allBodyFieldNames, BODY_FIELDS, checkBodyPath, QUERY_FIELDS } from './docker-fields';
import { type FieldPath, parseFieldPath } from '../docker-request/field-paths';
import { type JsonNode, JsonSyntaxError, parseJson, toPlain } from '../docker-request/json-text';
import { isListPlaceholder, isNumberPlaceholder, placeholdersIn, wholePlaceholder } from './placeholders';
import { PolicyError } from './policy-error';
import {
  type ActionPattern, BUILTIN_POLICY, type Condition, CONDITION_KINDS, type ListSource, type NumberSource, type PayloadRule, type Placeholder, type Policy, type PolicySet,
} from './policy-types';

const POLICY_KEYS = ['name', 'description', 'users', 'groups', 'actions', 'allow_actions', 'deny_actions', 'readonly', 'deny_payloads', 'excl_payloads', 'payload_rules', 'registries'];
const RULE_KEYS = ['field', 'in', 'actions', 'required', 'hint', ...CONDITION_KINDS];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REGISTRY = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

type Obj = Extract<JsonNode, { kind: 'object' }>;

/** One policy object being read: its problems go to `problems`, prefixed with where it is. */
class PolicyReader {
  /** placeholders the whole policy uses */
  readonly uses = new Set<Placeholder>();
  /** placeholders the rule being read uses */
  ruleUses = new Set<Placeholder>();
  private label: string;

  constructor(private readonly node: Obj, private readonly where: string, index: number, private readonly problems: string[]) {
    const name = node.entries.find((e) => e.key === 'name')?.value;
    this.label = name?.kind === 'string' && NAME.test(name.value) ? `policy '${name.value}'` : `policy #${index + 1}`;
  }

  use(p: Placeholder): void {
    this.uses.add(p);
    this.ruleUses.add(p);
  }

  problem(key: string, what: string): void {
    this.problems.push(`${this.where}: ${this.label}: ${key}${key ? ' ' : ''}${what}`);
  }

  entries(node: Obj, known: readonly string[], at: string): Map<string, JsonNode> {
    const out = new Map<string, JsonNode>();
    for (const e of node.entries) {
      const key = at ? `${at}.${e.key}` : e.key;
      if (out.has(e.key)) {
        this.problem(key, 'is given twice');
        continue;
      }
      if (!known.includes(e.key)) {
        const near = closeMatches(e.key, known);
        this.problem('', `unknown key '${key}'${near.length ? ` (did you mean ${near.map((n) => `'${n}'`).join(' or ')}?)` : ''}; known keys: ${known.join(', ')}`);
        continue;
      }
      out.set(e.key, e.value);
    }
    return out;
  }

  string(node: JsonNode | undefined, key: string): string | undefined {
    if (node === undefined) return undefined;
    if (node.kind !== 'string') this.problem(key, `must be a string, not ${node.kind}`);
    else return node.value;
    return undefined;
  }

  strings(node: JsonNode | undefined, key: string): { value: string; key: string }[] {
    if (node === undefined) return [];
    if (node.kind !== 'array') {
      this.problem(key, `must be a list of strings, not ${node.kind}`);
      return [];
    }
    const out: { value: string; key: string }[] = [];
    node.items.forEach((item, i) => {
      if (item.kind !== 'string') this.problem(`${key}[${i}]`, `must be a string, not ${item.kind}`);
      else out.push({ value: item.value, key: `${key}[${i}]` });
    });
    return out;
  }

  actions(node: JsonNode | undefined, key: string): ActionPattern[] {
    const out: ActionPattern[] = [];
    for (const s of this.strings(node, key)) {
      const p = compileActionPattern(s.value);
      if (typeof p === 'string') this.problem(s.key, p);
      else out.push(p);
    }
    return out;
  }

  fieldPath(text: string, key: string): FieldPath | undefined {
    const p = parseFieldPath(text);
    if (typeof p === 'string') {
      this.problem(key, p);
      return undefined;
    }
    return p;
  }

  /** A list as written, or one placeholder standing for a list. */
  listSource(node: JsonNode, key: string, item: (text: string, key: string) => string | undefined): ListSource | undefined {
    if (node.kind === 'string') {
      const p = wholePlaceholder(node.value);
      if (!p) {
        this.problem(key, `must be a list or one placeholder such as {{devices}}, not the text '${node.value}'`);
        return undefined;
      }
      this.use(p);
      return { placeholder: p };
    }
    if (node.kind !== 'array') {
      this.problem(key, `must be a list or one placeholder such as {{devices}}, not ${node.kind}`);
      return undefined;
    }
    node.items.forEach((el, i) => {
      if (el.kind === 'string') {
        const why = item(el.value, `${key}[${i}]`) ?? (el.value.includes('{{') ? 'cannot hold a placeholder: give the placeholder as the whole value' : undefined);
        if (why) this.problem(`${key}[${i}]`, why);
      } else {
        const why = item(JSON.stringify(toPlain(el)), `${key}[${i}]`);
        if (why) this.problem(`${key}[${i}]`, why);
      }
    });
    return { list: node.items.map(toPlain) };
  }

  numberSource(node: JsonNode, key: string): NumberSource | undefined {
    if (node.kind === 'number' && node.value > 0 && Number.isFinite(node.value)) return { number: node.value };
    if (node.kind === 'string') {
      const p = wholePlaceholder(node.value);
      if (p && isNumberPlaceholder(p)) {
        this.use(p);
        return { placeholder: p };
      }
    }
    this.problem(key, 'must be a positive number or one of {{cpus}}, {{memory_bytes}}, {{uid}}, {{gid}}');
    return undefined;
  }
}

function condition(r: PolicyReader, kind: Condition['kind'], node: JsonNode, key: string, field: FieldPath | undefined): Condition | undefined {
  const k = `${key}.${kind}`;
  const anyValue = (): undefined => undefined;
  switch (kind) {
    case 'deny': {
      if (node.kind === 'string' && (node.value === 'present' || node.value === 'nonempty')) return { kind, mode: node.value };
      r.problem(k, "must be 'nonempty' (set to anything but null, false, 0, '' or empty) or 'present' (given at all)");
      return undefined;
    }
    case 'deny_values': {
      if (node.kind !== 'array' || node.items.length === 0) {
        r.problem(k, 'must be a non-empty list of values');
        return undefined;
      }
      return { kind, values: node.items.map(toPlain) };
    }
    case 'equals': {
      if (node.kind === 'string') {
        const uses = placeholdersIn(node.value);
        if (typeof uses === 'string') {
          r.problem(k, uses);
          return undefined;
        }
        if (uses.some(isListPlaceholder)) {
          r.problem(k, 'cannot compare with a list placeholder: use one_of');
          return undefined;
        }
        uses.forEach((u) => r.use(u));
        return uses.length ? { kind, value: { template: node.value, uses } } : { kind, value: { literal: node.value } };
      }
      return { kind, value: { literal: toPlain(node) } };
    }
    case 'one_of':
    case 'includes': {
      const values = r.listSource(node, k, anyValue);
      return values && { kind, values };
    }
    case 'bind_under': {
      const prefixes = r.listSource(node, k, (t) => (t.startsWith('/') ? undefined : `'${t}' is not an absolute path`));
      return prefixes && { kind, prefixes };
    }
    case 'registry_in': {
      const registries = r.listSource(node, k, (t) => (REGISTRY.test(t) ? undefined : `'${t}' is not a registry host[:port]`));
      return registries && { kind, registries };
    }
    case 'max': {
      const limit = r.numberSource(node, k);
      return limit && { kind, limit };
    }
    case 'max_cpus': {
      const limit = r.numberSource(node, k);
      const last = field?.segments[field.segments.length - 1];
      if (field && (last?.name.toLowerCase() !== 'nanocpus' || last.each || field.keys)) {
        r.problem(k, `applies to a NanoCpus field (CpuQuota and CpuPeriod beside it count too), not to ${field.text}`);
        return undefined;
      }
      return limit && { kind, limit };
    }
  }
}

function payloadRule(r: PolicyReader, node: JsonNode, key: string): PayloadRule | undefined {
  if (node.kind !== 'object') {
    r.problem(key, `must be an object, not ${node.kind}`);
    return undefined;
  }
  r.ruleUses = new Set();
  const e = r.entries(node, RULE_KEYS, key);
  const fieldText = r.string(e.get('field'), `${key}.field`);
  if (fieldText === undefined && !e.has('field')) r.problem(`${key}.field`, 'is required');
  const inText = r.string(e.get('in'), `${key}.in`) ?? 'body';
  if (inText !== 'body' && inText !== 'query') r.problem(`${key}.in`, "must be 'body' or 'query'");
  const field = fieldText === undefined ? undefined : r.fieldPath(fieldText, `${key}.field`);
  if (!e.has('actions')) r.problem(`${key}.actions`, 'is required: name the actions whose requests the rule checks');
  const actions = r.actions(e.get('actions'), `${key}.actions`);
  const requiredNode = e.get('required');
  if (requiredNode && requiredNode.kind !== 'boolean') r.problem(`${key}.required`, 'must be true or false');
  const hint = r.string(e.get('hint'), `${key}.hint`);
  if (hint !== undefined) {
    const uses = placeholdersIn(hint, true);
    if (typeof uses === 'string') r.problem(`${key}.hint`, uses);
    else uses.forEach((u) => r.use(u));
  }
  const kinds = CONDITION_KINDS.filter((c) => e.has(c));
  if (kinds.length !== 1) {
    r.problem(key, `must have exactly one of ${CONDITION_KINDS.join(', ')}${kinds.length ? ` (it has ${kinds.join(', ')})` : ''}`);
    return undefined;
  }
  const cond = condition(r, kinds[0]!, e.get(kinds[0]!)!, key, field);

  if (field && inText === 'query') {
    if (field.segments.length !== 1 || field.segments[0]!.each || field.keys) r.problem(`${key}.field`, `a query parameter is a plain name, not ${field.text}`);
    for (const a of new Set(actions.flatMap((p) => [...p.matches]))) {
      const known = QUERY_FIELDS[a];
      if (known && !known.includes(field.text)) {
        r.problem(`${key}.field`, `'${field.text}' is not a query parameter of ${a} (its parameters: ${known.join(', ')}; names are case-sensitive)`);
      }
    }
  } else if (field) {
    const withSchema = [...new Set(actions.flatMap((p) => [...p.matches]))].filter((a) => BODY_FIELDS[a]);
    const whys = withSchema.map((a) => checkBodyPath(BODY_FIELDS[a]!, field));
    if (withSchema.length && whys.every((w) => w !== undefined)) r.problem(`${key}.field`, `${whys[0]} (in the ${withSchema[0]} body)`);
  }
  if (!field || !cond || inText !== 'body' && inText !== 'query') return undefined;
  return {
    where: key, field, in: inText, actions, required: requiredNode?.kind === 'boolean' && requiredNode.value, hint, condition: cond,
    uses: [...r.ruleUses],
  };
}

function readPolicy(node: JsonNode, where: string, index: number, problems: string[]): Policy | undefined {
  if (node.kind !== 'object') {
    problems.push(`${where}: a policy must be a JSON object, not ${node.kind}`);
    return undefined;
  }
  const before = problems.length;
  const r = new PolicyReader(node, where, index, problems);
  const e = r.entries(node, POLICY_KEYS, '');

  const name = r.string(e.get('name'), 'name');
  if (name === undefined && !e.has('name')) r.problem('name', 'is required');
  else if (name !== undefined && !NAME.test(name)) r.problem('name', `'${name}' must be letters, digits, . _ - (starting with a letter or digit)`);
  else if (name === BUILTIN_POLICY) r.problem('name', `'${BUILTIN_POLICY}' is the name of berth's built-in rules: choose another`);

  const users = r.strings(e.get('users'), 'users');
  for (const u of users) if (u.value === '') r.problem(u.key, "is empty: write '*' for every user (root is only matched by name)");
  const groups = r.strings(e.get('groups'), 'groups');
  for (const g of groups) if (g.value === '') r.problem(g.key, 'is empty');
  if (users.length === 0 && groups.length === 0) r.problem('users', 'and groups are both empty: the policy would apply to nobody');

  const allow = [...r.actions(e.get('actions'), 'actions'), ...r.actions(e.get('allow_actions'), 'allow_actions')];
  const deny = r.actions(e.get('deny_actions'), 'deny_actions');
  const ro = e.get('readonly');
  if (ro && ro.kind !== 'boolean') r.problem('readonly', 'must be true or false');

  const knownFields = allBodyFieldNames();
  const unsetFields: FieldPath[] = [];
  for (const key of ['deny_payloads', 'excl_payloads']) {
    for (const s of r.strings(e.get(key), key)) {
      const p = r.fieldPath(s.value, s.key);
      if (!p) continue;
      if (p.segments.length === 1 && !p.keys && !p.segments[0]!.each) {
        if (![...knownFields].some((f) => f.toLowerCase() === s.value.toLowerCase())) {
          const near = closeMatches(s.value, knownFields);
          r.problem(s.key, `'${s.value}' is not a field of any Docker request berth knows${near.length ? `; close: ${near.join(', ')}` : ''}`);
          continue;
        }
      } else if (Object.values(BODY_FIELDS).every((schema) => checkBodyPath(schema, p) !== undefined)) {
        r.problem(s.key, `${checkBodyPath(BODY_FIELDS.container_create!, p)} (in the container_create body)`);
        continue;
      }
      unsetFields.push(p);
    }
  }

  const registries = r.strings(e.get('registries'), 'registries');
  for (const reg of registries) if (!REGISTRY.test(reg.value)) r.problem(reg.key, `'${reg.value}' is not a registry host[:port] (e.g. registry.site:5000, docker.io)`);

  const rules: PayloadRule[] = [];
  const rulesNode = e.get('payload_rules');
  if (rulesNode && rulesNode.kind !== 'array') r.problem('payload_rules', `must be a list of rules, not ${rulesNode.kind}`);
  else rulesNode?.items.forEach((n, i) => {
    const rule = payloadRule(r, n, `payload_rules[${i}]`);
    if (rule) rules.push(rule);
  });
  if (e.has('registries') && !r.uses.has('registries')) r.problem('registries', 'is given but no rule uses {{registries}}: add a registry_in rule or remove it');

  if (problems.length > before || name === undefined) return undefined;
  return {
    name, origin: where, description: r.string(e.get('description'), 'description'),
    users: users.map((u) => u.value), groups: groups.map((g) => g.value), allow, deny, readonly: ro?.kind === 'boolean' && ro.value,
    unsetFields, rules, registries: e.has('registries') ? registries.map((x) => x.value) : undefined,
  };
}

function syntax(source: string, err: unknown, lineOffset = 0): string {
  if (err instanceof JsonSyntaxError) return `${source}:${err.line + lineOffset}: not valid JSON: ${err.why} (column ${err.column})`;
  return `${source}: not valid JSON: ${(err as Error).message}`;
}

/** Reads a policy file's text; throws PolicyError listing every problem. */
export function parsePolicyFile(text: string, source: string): PolicySet {
  const problems: string[] = [];
  const docs: { node: JsonNode; where: string }[] = [];
  const trimmed = text.trim();
  if (trimmed === '') throw new PolicyError([`${source}: holds no policies (an empty policy set would deny every request: write the policies, or remove the file from the configuration)`]);

  let whole: JsonNode | undefined;
  let wholeError: unknown;
  try {
    whole = parseJson(text);
  } catch (err) {
    wholeError = err;
  }
  if (whole?.kind === 'array') whole.items.forEach((node, i) => docs.push({ node, where: `${source}[${i}]` }));
  else if (whole) docs.push({ node: whole, where: source });
  else {
    // JSON lines when the first non-blank line is a complete value; otherwise one broken document
    const lines = text.split('\n');
    const first = lines.findIndex((l) => l.trim() !== '');
    let linesForm = false;
    try {
      parseJson(lines[first]!);
      linesForm = true;
    } catch {
      linesForm = false;
    }
    if (!linesForm) throw new PolicyError([syntax(source, wholeError)]);
    lines.forEach((l, i) => {
      if (l.trim() === '') return;
      try {
        docs.push({ node: parseJson(l), where: `${source}:${i + 1}` });
      } catch (err) {
        problems.push(syntax(source, err, i));
      }
    });
  }

  const policies: Policy[] = [];
  docs.forEach((d, i) => {
    const p = readPolicy(d.node, d.where, i, problems);
    if (p) policies.push(p);
  });
  const seen = new Map<string, string>();
  for (const p of policies) {
    const other = seen.get(p.name);
    if (other) problems.push(`${p.origin}: policy '${p.name}': name is also the name of the policy at ${other}: names must be unique (decisions and logs quote them)`);
    seen.set(p.name, p.origin);
  }
  if (problems.length) throw new PolicyError(problems);
  if (policies.length === 0) throw new PolicyError([`${source}: holds no policies`]);
  return Object.freeze({ source, policies: Object.freeze(policies) });
}
