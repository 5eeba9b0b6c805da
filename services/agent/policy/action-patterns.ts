// How a policy names actions. A plain name (container_create) must be an action berth knows;
// text of name characters and `*` is a glob (container_*, the Cray seed form); anything else
// is a regular expression (the authz-broker form), anchored at both ends, so that
// `container_create` never matches a longer name. A glob or expression that matches no
// action is refused at load, since it can only be a mistake: `container` (authz-broker's
// unanchored "every container action") is refused with the anchored spellings to use.
import { ACTIONS, actionInfo, allActionNames } from '../docker-request/actions';
import { closeMatches } from './close-matches';
import type { ActionPattern } from './policy-types';

const PLAIN = /^[a-z][a-z0-9_]*$/;
const GLOB = /^[a-z0-9_*]*\*[a-z0-9_*]*$/;

/** The pattern, or why it is not one (without the key, which the caller adds). */
export function compileActionPattern(text: string): ActionPattern | string {
  if (PLAIN.test(text)) {
    const info = actionInfo(text);
    if (!info) {
      const near = closeMatches(text, allActionNames());
      const family = ACTIONS.has(`${text}_list`) || [...ACTIONS.keys()].some((a) => a.startsWith(`${text}_`)) ? ` (for every ${text} action write '${text}_*')` : '';
      return `'${text}' is not an action berth knows${family}${near.length ? `; close: ${near.join(', ')}` : ''}`;
    }
    return { text, matches: new Set([info.name]) };
  }
  let re: RegExp;
  let kind: string;
  if (GLOB.test(text)) {
    kind = 'glob';
    re = new RegExp(`^${text.split('*').join('.*')}$`);
  } else {
    kind = 'regular expression';
    try {
      re = new RegExp(`^(?:${text})$`);
    } catch (err) {
      return `'${text}' is not a valid regular expression: ${(err as Error).message}`;
    }
  }
  const matches = new Set<string>();
  for (const a of ACTIONS.values()) if (re.test(a.name) || a.aliases.some((al) => re.test(al))) matches.add(a.name);
  if (matches.size === 0) {
    const hint = text === '' ? "write '.*' or '*' for every action" : `patterns match whole names: write '${text.replace(/[.*]*$/, '')}_.*' or '${text.replace(/[.*]*$/, '')}_*' for a family`;
    return `${kind} '${text}' matches no action (${hint})`;
  }
  return { text, matches };
}

export function patternMatches(patterns: readonly ActionPattern[], action: string): ActionPattern | undefined {
  return patterns.find((p) => p.matches.has(action));
}
