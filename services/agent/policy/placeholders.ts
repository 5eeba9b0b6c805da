// {{uid}}, {{devices}} … in rule values, filled from the request's context: the job's ids,
// allocation, devices and mount prefixes, and the registries (the policy's own, else the site's). A rule that needs a
// job value when the user has no job on the node cannot be checked, and so denies.
import { LIST_PLACEHOLDERS, NUMBER_PLACEHOLDERS, type Placeholder, PLACEHOLDERS, type PolicyContext } from './policy-types';

const TOKEN = /\{\{\s*([A-Za-z_]+)\s*\}\}/g;
const WHOLE = /^\{\{\s*([A-Za-z_]+)\s*\}\}$/;

/** The placeholders a text uses, or why it is wrong (an unknown name; a list inside a value's text). */
export function placeholdersIn(text: string, listsInText = false): Placeholder[] | string {
  const uses: Placeholder[] = [];
  for (const m of text.matchAll(TOKEN)) {
    const name = m[1]!;
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) return `{{${name}}} is not a placeholder (known: ${PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ')})`;
    if (!listsInText && LIST_PLACEHOLDERS.includes(name as Placeholder) && !WHOLE.test(text)) return `{{${name}}} is a list and must be the whole value, not part of a text`;
    uses.push(name as Placeholder);
  }
  const stray = text.replace(TOKEN, '');
  if (stray.includes('{{') || stray.includes('}}')) return `'${text}' has an unbalanced {{ or }}`;
  return uses;
}

/** The single placeholder a value consists of ("{{devices}}"), if it is one. */
export function wholePlaceholder(text: string): Placeholder | undefined {
  const m = WHOLE.exec(text);
  return m && (PLACEHOLDERS as readonly string[]).includes(m[1]!) ? (m[1] as Placeholder) : undefined;
}

export function isListPlaceholder(p: Placeholder): boolean {
  return LIST_PLACEHOLDERS.includes(p);
}

export function isNumberPlaceholder(p: Placeholder): boolean {
  return NUMBER_PLACEHOLDERS.includes(p);
}

/** A rule needed a job value and the user has no job here.
 * Outside the catalogue: internal to the policy engine, which catches it (policy/engine.ts) and lets the rule not match */
export class NoJobValue extends Error {
  override readonly name = 'NoJobValue';
  constructor(readonly placeholder: Placeholder) {
    super(`{{${placeholder}}} needs the user's job, and the user has no job on this node`);
  }
}

/** The values placeholders stand for in one request. */
export class PlaceholderValues {
  constructor(private readonly ctx: PolicyContext, private readonly registries: readonly string[]) {}

  list(p: Placeholder): string[] {
    if (p === 'registries') return [...this.registries];
    const job = this.ctx.job;
    if (!job) throw new NoJobValue(p);
    switch (p) {
      case 'devices':
        return [...job.devices];
      case 'mount_prefixes':
        return [...job.mountPrefixes];
      case 'gids':
        return [...new Set([job.gid, ...(job.groupIds ?? [])])].map(String);
      default:
        return [String(this.number(p))];
    }
  }

  number(p: Placeholder): number {
    const job = this.ctx.job;
    if (!job) throw new NoJobValue(p);
    switch (p) {
      case 'uid':
        return job.uid;
      case 'gid':
        return job.gid;
      case 'cpus':
        return job.cpus;
      case 'memory_bytes':
        return job.memoryBytes;
      default:
        throw new Error(`{{${p}}} is a list, not a number`);
    }
  }

  text(template: string): string {
    return template.replace(TOKEN, (_, name: string) => {
      const p = name as Placeholder;
      return isNumberPlaceholder(p) ? String(this.number(p)) : this.list(p).join(', ');
    });
  }
}
