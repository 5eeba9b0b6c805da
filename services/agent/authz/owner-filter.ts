// Whose containers a listing shows. dockerd's AuthZ plugin cannot change an answer, so a job
// user's `containers/json`, `events` and `volumes` must ask only for their own: the request's
// `filters` must hold the label filter io.berth.job.id=<their job>. Every container of a job
// carries that label — berth's own and, through the job's Docker endpoint (or typed by hand),
// the user's — and dockerd ANDs label filters, so nothing else can match.
import { parseQuery } from '../docker-request/actions';

export const USER_JOB_LABEL = 'io.berth.job.id';
export const USER_ROLE_LABEL = 'io.berth.role';

/** dockerd's filters.FromJSON: {"label":{"k=v":true}} or the legacy {"label":["k=v"]} */
function labelFilters(text: string): string[] | undefined {
  if (text === '') return [];
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const label = (v as Record<string, unknown>).label;
  if (label === undefined) return [];
  if (Array.isArray(label)) return label.every((x) => typeof x === 'string') ? (label as string[]) : undefined;
  if (label && typeof label === 'object') return Object.entries(label as Record<string, unknown>).filter(([, on]) => on === true).map(([k]) => k);
  return undefined;
}

/** Why a listing is not limited to the job's own, or undefined when it is. */
export function ownerFilterProblem(uri: string, jobId: string): string | undefined {
  const want = `${USER_JOB_LABEL}=${jobId}`;
  const query = parseQuery(uri);
  const all = query?.filters ?? [];
  if (new Set(all).size > 1) return 'the query gives filters more than once; give it once';
  const labels = labelFilters(all[0] ?? '');
  if (labels === undefined) return 'the filters parameter is not JSON berth can read';
  if (labels.includes(want)) return undefined;
  return `listings show only your job's containers: filter by the label ${want} (docker ps --filter label=${want}), or use the DOCKER_HOST berth set for the job, which adds it`;
}

/** The URL with the label filter added to its filters (kept in dockerd's current form). */
export function addLabelFilter(url: string, label: string): string | undefined {
  const q = url.indexOf('?');
  const pathPart = q < 0 ? url : url.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const current = params.getAll('filters');
  let filters: Record<string, unknown> = {};
  if (current.length > 1) return undefined;
  if (current[0]) {
    try {
      const parsed = JSON.parse(current[0]) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
      filters = parsed as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  const l = filters.label;
  const set: Record<string, boolean> = Array.isArray(l) ? Object.fromEntries(l.map((x) => [String(x), true])) : l && typeof l === 'object' ? { ...(l as Record<string, boolean>) } : {};
  set[label] = true;
  // the other keys in the same form as label: dockerd reads one form for the whole object
  const out: Record<string, Record<string, boolean>> = {};
  for (const [k, v] of Object.entries(filters)) {
    if (k === 'label') continue;
    out[k] = Array.isArray(v) ? Object.fromEntries(v.map((x) => [String(x), true])) : (v as Record<string, boolean>);
  }
  out.label = set;
  params.set('filters', JSON.stringify(out));
  return `${pathPart}?${params.toString()}`;
}
