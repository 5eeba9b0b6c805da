// Field paths in payload rules: `HostConfig.Binds[*]`, `HostConfig.Devices[*].PathOnHost`,
// `Labels.*`. Names are dot-separated; `[*]` after a name stands for every element of that
// list; a final `.*` stands for every key of that object (Labels, Sysctls). Names are matched
// the way dockerd's Go decoder matches them: without regard to case (body.ts).

export interface PathSegment {
  name: string;
  each: boolean;
}

export interface FieldPath {
  text: string;
  segments: PathSegment[];
  /** the path ends in `.*`: the keys of the object it names */
  keys: boolean;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The path, or why the text is not one. */
export function parseFieldPath(text: string): FieldPath | string {
  if (text === '') return 'is empty';
  let rest = text;
  let keys = false;
  if (rest.endsWith('.*')) {
    keys = true;
    rest = rest.slice(0, -2);
  }
  const segments: PathSegment[] = [];
  for (const part of rest.split('.')) {
    const each = part.endsWith('[*]');
    const name = each ? part.slice(0, -3) : part;
    if (!NAME.test(name)) {
      return `'${text}' is not a field path: write names separated by dots, [*] after a list, .* at the end for an object's keys (e.g. HostConfig.Devices[*].PathOnHost)`;
    }
    segments.push({ name, each });
  }
  if (keys && segments[segments.length - 1]?.each) return `'${text}' is not a field path: .* names the keys of an object, not of a list`;
  return { text, segments, keys };
}

/** The path's text for element `indices` (HostConfig.Binds[*] → HostConfig.Binds[2]). */
export function concretePath(path: FieldPath, indices: readonly (number | string)[]): string {
  let i = 0;
  const parts = path.segments.map((s) => (s.each ? `${s.name}[${indices[i++] ?? '*'}]` : s.name));
  let out = parts.join('.');
  if (path.keys) out += `.${indices[i] ?? '*'}`;
  return out;
}
