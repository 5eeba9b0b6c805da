// berth accounting's output: records merged from several nodes, sorted by start time, as a
// JSON array (one record per line) or CSV with a header row (RFC 4180 quoting). Field names
// and units: docs/accounting.md.
export interface QueriedRecord {
  /** the record as the agent sent it (a JSON object) */
  text: string;
  rec: Record<string, unknown>;
}

export const CSV_COLUMNS = [
  'RecordType', 'JobID', 'StepID', 'TaskID', 'User', 'UID', 'GID', 'Account', 'Partition', 'NodeList',
  'Start', 'End', 'ElapsedSeconds', 'State', 'ExitCode', 'Reason', 'TotalCPUSeconds', 'MaxRSSBytes', 'UsageSource',
  'Image', 'ImageDigest', 'Registry', 'ContainerID', 'Pulled', 'PullSeconds', 'PullBytes', 'StartLatencySeconds',
  'Mounts', 'Devices', 'GPUs', 'CPUSet', 'Argv', 'SettledLate',
] as const;

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

function stepNumber(v: unknown): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER; // batch, extern and the like after numbered steps
}

/** Start time, then node, job, the job's record before its steps, step, task. */
export function compareRecords(a: Record<string, unknown>, b: Record<string, unknown>): number {
  const sa = str(a.Start);
  const sb = str(b.Start);
  if (sa !== sb) return Date.parse(sa) - Date.parse(sb) || sa.localeCompare(sb);
  return str(a.NodeList).localeCompare(str(b.NodeList))
    || Number(a.JobID) - Number(b.JobID) || str(a.JobID).localeCompare(str(b.JobID))
    || (a.RecordType === 'job' ? 0 : 1) - (b.RecordType === 'job' ? 0 : 1)
    || stepNumber(a.StepID) - stepNumber(b.StepID)
    || Number(a.TaskID ?? 0) - Number(b.TaskID ?? 0);
}

export function csvCell(v: unknown): string {
  let s: string;
  if (Array.isArray(v)) {
    s = v.map((x) => (x && typeof x === 'object' && 'Source' in x
      ? `${str((x as Record<string, unknown>).Source)}:${str((x as Record<string, unknown>).Target)}${(x as Record<string, unknown>).ReadOnly ? ':ro' : ''}`
      : str(x))).join(' ');
  } else s = str(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function formatCsv(records: readonly QueriedRecord[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const { rec } of records) lines.push(CSV_COLUMNS.map((c) => csvCell(rec[c])).join(','));
  return lines.join('\n') + '\n';
}

export function formatJson(records: readonly QueriedRecord[]): string {
  if (records.length === 0) return '[]\n';
  return '[\n' + records.map((r) => r.text).join(',\n') + '\n]\n';
}
