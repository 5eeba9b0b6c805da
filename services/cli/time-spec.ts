// Times on the command line (berth accounting --since/--until): an ISO 8601 date or time,
// `now`, a duration ago (`30m`, `2h`, `7d`, `1h30m`), or `now-DURATION` / `now+DURATION`.
// Units: s, m, h, d, w. A date or time without a zone is local time, as sacct reads it.
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DURATION = /^(?:\d+[smhdw])+$/;
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** outside the catalogue: the CLI's own usage error (berth accounting makes it an AccountingUsageError, exit 2); it never crosses the wire */
export class TimeSpecError extends Error {
  override readonly name = 'TimeSpecError';
}

/** Milliseconds in a duration such as 90s, 30m, 1h30m, 2d, 1w. */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) throw new TimeSpecError(`'${text}' is not a duration`);
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhdw])/g)) ms += Number(n) * UNIT_MS[unit!]!;
  return ms;
}

export function parseTimeSpec(text: string, option: string, now: Date = new Date()): Date {
  const t = text.trim();
  const help = `use an ISO 8601 date or time (2026-05-01, 2026-05-01T12:00:00Z), a duration ago (30m, 2h, 7d, 1h30m) or now-DURATION (now-30m); units s m h d w`;
  if (t === 'now') return now;
  const rel = t.match(/^now([+-])(.+)$/);
  if (rel) {
    if (!DURATION.test(rel[2]!)) throw new TimeSpecError(`${option} '${text}': '${rel[2]}' is not a duration; ${help}`);
    const ms = parseDuration(rel[2]!);
    return new Date(now.getTime() + (rel[1] === '+' ? ms : -ms));
  }
  if (DURATION.test(t)) return new Date(now.getTime() - parseDuration(t));
  if (ISO.test(t)) {
    // a date alone is midnight local time; Date.parse would take it as UTC
    const normalized = /^\d{4}-\d{2}-\d{2}$/.test(t) ? `${t}T00:00:00` : t.replace(' ', 'T');
    const ms = Date.parse(normalized);
    if (Number.isFinite(ms)) return new Date(ms);
    throw new TimeSpecError(`${option} '${text}' is not a valid date or time (check the month, day and hour); ${help}`);
  }
  throw new TimeSpecError(`${option} '${text}' is not a time berth understands; ${help}`);
}
