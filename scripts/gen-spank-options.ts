// Writes scripts/native/berth_options.h, the SPANK plugin's option table, from the one list of
// the options in services/shared/spank-options.ts: `npm run gen`, or
// `node --import tsx scripts/gen-spank-options.ts`.
// The header is checked in so that the plugin builds with gcc alone (scripts/build-native.sh
// needs no node); test/unit/spank-options.test.ts fails when it is not what this writes.
import path from 'node:path';
import { cString as quote, writeHeaderIfMain } from './c-header';
import { PYXIS_ALIASES, SPANK_OPTIONS, STEP_PROLOG_VARS, type SpankOption } from '../services/shared/spank-options';

export const HEADER_PATH = path.join(import.meta.dirname, 'native', 'berth_options.h');

const cString = (s: string): string => quote(s, 'gen-spank-options');

/** OPT_IMAGE for BERTH_CONTAINER_IMAGE */
function enumName(env: string): string {
  const m = /^BERTH_CONTAINER_([A-Z][A-Z_]*)$/.exec(env);
  if (!m) throw new Error(`gen-spank-options: ${env} is not a BERTH_CONTAINER_* variable`);
  return `OPT_${m[1]}`;
}

/** what the plugin's option callback relies on: a variable is set by one option with a value, or by one or two flags */
function checkOptions(options: readonly SpankOption[], vars: readonly string[]): void {
  const names = new Set<string>();
  for (const o of options) {
    if (!/^[a-z][a-z-]*$/.test(o.name) || names.has(o.name)) throw new Error(`gen-spank-options: option name '${o.name}' is not a-z and '-', or given twice`);
    names.add(o.name);
    if ((o.arg === undefined) === (o.sets === undefined)) throw new Error(`gen-spank-options: --${o.name} must have either an argument or a value it sets`);
  }
  for (const env of vars) {
    const rows = options.filter((o) => o.env === env);
    const valued = rows.filter((o) => o.arg !== undefined);
    if (valued.length ? rows.length !== 1 : rows.length > 2 || new Set(rows.map((o) => o.sets)).size !== rows.length) {
      throw new Error(`gen-spank-options: ${env} must be set by one option with a value, or by one or two flags setting different values`);
    }
  }
}

function usage(o: SpankOption): string {
  return `[berth] ${o.help} (env ${o.env}${o.sets !== undefined ? `=${o.sets}` : ''})`;
}

export function renderOptionsHeader(options: readonly SpankOption[] = SPANK_OPTIONS): string {
  const vars = [...new Set(options.map((o) => o.env))];
  checkOptions(options, vars);
  const rows = options.map((o) => {
    const val = `${enumName(o.env)} * 2${o.sets === '1' ? ' + 1' : ''}`;
    return `    { ${cString(o.name)}, ${o.arg !== undefined ? cString(o.arg) : 'NULL'}, ${cString(usage(o))}, ${o.arg !== undefined ? 1 : 0}, ${val}, cb },`;
  });
  const list = (xs: readonly string[]) => `{ ${xs.map(cString).join(', ')} }`;
  return [
    '/* Generated from services/shared/spank-options.ts by scripts/gen-spank-options.ts; do not edit:',
    ' * change the list there and run `npm run gen`. */',
    '#ifndef BERTH_OPTIONS_H',
    '#define BERTH_OPTIONS_H',
    '',
    '/* the variables the options set, in the order `berth submit-check` is given them */',
    `enum { ${[...vars.map(enumName), 'OPT_COUNT'].join(', ')} };`,
    `#define BERTH_OPTION_VARS ${list(vars)}`,
    ...vars.map((v) => `#define BERTH_VAR_${enumName(v).slice(4)} ${cString(v)}`),
    '',
    '/* what `berth hook step-prolog` is given for a step\'s own container */',
    `#define BERTH_STEP_PROLOG_VARS ${list(STEP_PROLOG_VARS)}`,
    '',
    '/* pyxis\'s variables for the options: { name, the option variable (OPT_*), inverted } */',
    `#define BERTH_PYXIS_ALIASES { ${PYXIS_ALIASES.map((a) => `{ ${cString(a.pyxis)}, ${enumName(a.env)}, ${a.invert ? 1 : 0} }`).join(', ')} }`,
    '',
    '/* struct spank_option rows (name, arginfo, usage, has_arg, val, callback), in srun --help\'s',
    ' * order; val is the variable * 2 + the value a flag sets */',
    '#define BERTH_SPANK_OPTIONS(cb) \\',
    ...rows.map((r, i) => (i < rows.length - 1 ? `${r} \\` : r)),
    '#endif',
    '',
  ].join('\n');
}

writeHeaderIfMain(import.meta.url, HEADER_PATH, 'gen-spank-options', renderOptionsHeader);
