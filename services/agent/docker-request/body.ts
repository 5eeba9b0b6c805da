// A Docker API request body as dockerd sees it, not as JSON.parse would. dockerd decodes
// bodies with Go's encoding/json into structs, which
//   - matches keys to fields without regard to case, with Unicode folding: `hostconfig`,
//     `HOSTCONFIG` and `Hoſtconfig` (U+017F) all fill HostConfig; K (U+212A) folds to k;
//   - lets a later duplicate key win for strings, numbers and booleans, but decodes a later
//     object INTO the earlier one (fields of both survive) and a later list element by
//     element into the earlier list (golang/go#21092);
//   - ignores null for strings, numbers, booleans and structs.
// The view built here merges duplicates that way and never lets null erase, so it holds at
// least every setting dockerd ends up with: a rule can only see more than dockerd applies,
// never less. Map keys (Labels) are kept exactly as written, all of them.
import { type FieldPath, concretePath } from './field-paths';
import { type JsonNode, parseJson } from './json-text';

export class BodyNumber {
  constructor(readonly value: number, readonly raw: string) {}
}

export interface BodyField {
  /** the key as last written */
  name: string;
  value: BodyValue;
}

export class BodyObject {
  /** by folded key */
  readonly fields = new Map<string, BodyField>();
  /** every distinct key as written, in order (a Go map keeps them all) */
  readonly keys: string[] = [];
  private readonly seen = new Set<string>();

  get(name: string): BodyField | undefined {
    return this.fields.get(goFold(name));
  }

  /** Decodes `value` into the field `key` as Go would decode a later occurrence of the key. */
  assign(key: string, value: BodyValue): void {
    this.noteKey(key);
    this.setField(goFold(key), key, value);
  }

  /** Merges a later object into this one: each of its fields once, every key it was written with. */
  absorb(next: BodyObject): void {
    for (const k of next.keys) this.noteKey(k);
    for (const [folded, f] of next.fields) this.setField(folded, f.name, f.value);
  }

  private noteKey(key: string): void {
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.keys.push(key);
  }

  private setField(folded: string, name: string, value: BodyValue): void {
    const old = this.fields.get(folded);
    this.fields.set(folded, { name, value: old === undefined ? value : merge(old.value, value) });
  }
}

export type BodyValue = null | boolean | string | BodyNumber | BodyValue[] | BodyObject;

/** Go's key folding for matching JSON keys to struct fields (encoding/json foldName). */
export function goFold(key: string): string {
  let out = '';
  for (const ch of key) {
    const c = ch.charCodeAt(0);
    if (c >= 0x41 && c <= 0x5a) out += String.fromCharCode(c + 32);
    else if (ch === '\u017f') out += 's';
    else if (ch === '\u212a') out += 'k';
    else out += ch;
  }
  return out;
}

/**
 * A later occurrence merged into an earlier one. Both were just built by fromJson and belong to
 * no one else, so the earlier one is changed in place: a body of many duplicates costs what its
 * size costs, not its size times the number of duplicates.
 */
function merge(old: BodyValue, next: BodyValue): BodyValue {
  if (next === null) return old;
  if (old instanceof BodyObject && next instanceof BodyObject) {
    old.absorb(next);
    return old;
  }
  if (Array.isArray(old) && Array.isArray(next)) {
    for (let i = 0; i < next.length; i++) old[i] = i < old.length ? merge(old[i]!, next[i]!) : next[i]!;
    old.length = next.length;
    return old;
  }
  return next;
}

export function fromJson(node: JsonNode): BodyValue {
  switch (node.kind) {
    case 'object': {
      const obj = new BodyObject();
      for (const e of node.entries) obj.assign(e.key, fromJson(e.value));
      return obj;
    }
    case 'array':
      return node.items.map(fromJson);
    case 'number':
      return new BodyNumber(node.value, node.raw);
    case 'null':
      return null;
    default:
      return node.value;
  }
}

/** Parses a request body; throws JsonSyntaxError. */
export function parseBody(text: string): BodyValue {
  return fromJson(parseJson(text));
}

/** A body berthd built itself (a plain object). */
export function bodyFromPlain(value: unknown): BodyValue {
  return parseBody(JSON.stringify(value ?? null));
}

/** Set means dockerd will act on it: not absent, null, false, 0, "", [] or an object of unset fields. */
export function isSet(v: BodyValue | undefined): boolean {
  if (v === undefined || v === null || v === false || v === '') return false;
  if (v instanceof BodyNumber) return v.value !== 0;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof BodyObject) return [...v.fields.values()].some((f) => isSet(f.value));
  return true;
}

/** Equality with a plain JSON value from a policy. */
export function equalsPlain(v: BodyValue | undefined, plain: unknown): boolean {
  if (v === undefined) return false;
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v === plain;
  if (v instanceof BodyNumber) return typeof plain === 'number' && v.value === plain;
  if (Array.isArray(v)) return Array.isArray(plain) && plain.length === v.length && v.every((x, i) => equalsPlain(x, plain[i]));
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) return false;
  const entries = Object.entries(plain as Record<string, unknown>);
  return entries.length === v.fields.size && entries.every(([k, pv]) => equalsPlain(v.get(k)?.value, pv));
}

const PLAIN_STRING = /^[A-Za-z0-9_.,:/@+=%-]+$/;

/** A value as a denial message shows it: CapAdd=[SYS_ADMIN], User=0, User=' 0', Image=''. */
export function display(v: BodyValue | undefined, max = 120): string {
  const s = render(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function render(v: BodyValue | undefined): string {
  if (v === undefined) return '(absent)';
  if (v === null) return 'null';
  if (typeof v === 'string') return PLAIN_STRING.test(v) ? v : `'${JSON.stringify(v).slice(1, -1).replace(/'/g, "\\'")}'`;
  if (typeof v === 'boolean') return String(v);
  if (v instanceof BodyNumber) return v.raw;
  if (Array.isArray(v)) return `[${v.map(render).join(', ')}]`;
  return `{${[...v.fields.values()].map((f) => `${f.name}: ${render(f.value)}`).join(', ')}}`;
}

export interface BodyItem {
  /** the concrete path, e.g. HostConfig.Binds[1] */
  path: string;
  /** undefined when the field is absent */
  value: BodyValue | undefined;
  /** the object holding the field (for rules that read its neighbours) */
  parent?: BodyObject;
  /** why the body does not have the shape the path expects (a string where an object must be) */
  malformed?: string;
}

/**
 * The values a path reaches in a body. A name that is absent gives one item with value
 * undefined (so that `required` can see it); `[*]` over an absent or null list gives none.
 */
export function lookup(root: BodyValue, path: FieldPath): BodyItem[] {
  const out: BodyItem[] = [];
  const walk = (value: BodyValue | undefined, parent: BodyObject | undefined, seg: number, indices: (number | string)[]): void => {
    const here = (): string => concretePath({ ...path, segments: path.segments.slice(0, seg), keys: false }, indices);
    if (seg === path.segments.length) {
      if (!path.keys) {
        out.push({ path: concretePath(path, indices), value, parent });
        return;
      }
      if (value === undefined || value === null) return;
      if (!(value instanceof BodyObject)) {
        out.push({ path: here(), value, malformed: `${here()}=${display(value)} is not an object` });
        return;
      }
      for (const k of value.keys) out.push({ path: concretePath(path, [...indices, k]), value: k, parent: value });
      return;
    }
    if (value === undefined || value === null) {
      if (seg === 0 || !path.segments[seg]!.each) out.push({ path: concretePath(path, indices), value: undefined });
      return;
    }
    if (!(value instanceof BodyObject)) {
      out.push({ path: here(), value, malformed: `${here() || 'the body'}=${display(value)} is not an object` });
      return;
    }
    const s = path.segments[seg]!;
    const f = value.get(s.name);
    if (!s.each) {
      walk(f?.value, value, seg + 1, indices);
      return;
    }
    const list = f?.value;
    if (list === undefined || list === null) return;
    if (!Array.isArray(list)) {
      const p = concretePath({ ...path, segments: path.segments.slice(0, seg + 1).map((x, i) => (i === seg ? { ...x, each: false } : x)), keys: false }, indices);
      out.push({ path: p, value: list, malformed: `${p}=${display(list)} is not a list` });
      return;
    }
    list.forEach((el, i) => {
      if (seg + 1 === path.segments.length && !path.keys) out.push({ path: concretePath(path, [...indices, i]), value: el, parent: value });
      else walk(el, undefined, seg + 1, [...indices, i]);
    });
  };
  walk(root, undefined, 0, []);
  return out;
}

/** Every field named `name` (folded), at any depth, with its path as written. */
export function findEverywhere(root: BodyValue, name: string): BodyItem[] {
  const want = goFold(name);
  const out: BodyItem[] = [];
  const walk = (v: BodyValue, at: string): void => {
    if (Array.isArray(v)) v.forEach((el, i) => walk(el, `${at}[${i}]`));
    else if (v instanceof BodyObject) {
      for (const [folded, f] of v.fields) {
        const p = at ? `${at}.${f.name}` : f.name;
        if (folded === want) out.push({ path: p, value: f.value, parent: v });
        walk(f.value, p);
      }
    }
  };
  walk(root, '');
  return out;
}
