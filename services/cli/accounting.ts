// `berth accounting --since 1d [--until T] [--job ID] [--user NAME] --nodes n[1-3] --format csv|json`:
// asks every node's agent for its accounting records in parallel (QueryAccounting), merges
// them sorted by start time and prints them. A node that cannot be asked is named on stderr
// while the other nodes' records are still printed; the exit status is that of the other
// fleet commands (fanout.ts): 0 every node answered, 3 some did (partial), 1 none did.
import type * as grpc from '@grpc/grpc-js';
import type { QueryAccountingBatch__Output } from '../shared/gen/berth/v1/QueryAccountingBatch';
import type { QueryAccountingRequest } from '../shared/gen/berth/v1/QueryAccountingRequest';
import { expandHostlist } from '../shared/hostlist';
import { compareRecords, formatCsv, formatJson, type QueriedRecord } from './accounting-format';
import { agentTarget, callMetadata, connect, describeGrpcError } from './agent-client';
import { fanOut, fanoutExitStatus } from './fanout';
import { parseTimeSpec, TimeSpecError } from './time-spec';
import { isJobId } from '../shared/ids';

export const ACCOUNTING_FORMATS = ['csv', 'json'] as const;

export interface AccountingArgs {
  since?: string;
  until?: string;
  job?: string;
  user?: string;
  nodes: string;
  format: string;
  jobsOnly?: boolean;
}

export interface AccountingIo {
  out: (s: string) => void;
  err: (s: string) => void;
  now?: Date;
  /** one node's records; the real one asks its agent (tests pass their own) */
  query?: (node: string, req: QueryAccountingRequest) => Promise<QueriedRecord[]>;
}

/** outside the catalogue: the CLI's own usage error (exit 2, before any node is asked); it never crosses the wire */
export class AccountingUsageError extends Error {
  override readonly name = 'AccountingUsageError';
}

/** The request for every node, from the command line; bad input says what to give instead. */
export function accountingRequest(a: AccountingArgs, now: Date = new Date()): QueryAccountingRequest {
  if (!(ACCOUNTING_FORMATS as readonly string[]).includes(a.format)) {
    throw new AccountingUsageError(`--format '${a.format}' is not supported: use --format csv or --format json`);
  }
  let since: Date | undefined;
  let until: Date | undefined;
  try {
    since = a.since ? parseTimeSpec(a.since, '--since', now) : undefined;
    until = a.until ? parseTimeSpec(a.until, '--until', now) : undefined;
  } catch (err) {
    if (err instanceof TimeSpecError) throw new AccountingUsageError(err.message);
    throw err;
  }
  if (since && until && until < since) {
    throw new AccountingUsageError(`--until (${until.toISOString()}) is before --since (${since.toISOString()}); swap them`);
  }
  if (a.job !== undefined && !isJobId(a.job)) throw new AccountingUsageError(`--job '${a.job}' is not a Slurm job id (digits only, e.g. --job 1234)`);
  if (a.user !== undefined && !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/.test(a.user)) throw new AccountingUsageError(`--user '${a.user}' is not a user name`);
  return {
    since: since?.toISOString() ?? '',
    until: until?.toISOString() ?? '',
    jobId: a.job ?? '',
    user: a.user ?? '',
    uid: 0,
    jobsOnly: a.jobsOnly ?? false,
  };
}

/** Every record one node's agent holds that matches, read from its stream of batches. */
export function queryNode(node: string, req: QueryAccountingRequest): Promise<QueriedRecord[]> {
  const target = agentTarget(node);
  const client = connect(target);
  return callMetadata(target, 'QueryAccounting', '').then((md) => new Promise<QueriedRecord[]>((resolve, reject) => {
    const got: QueriedRecord[] = [];
    const call = client.QueryAccounting(req, md, { deadline: Date.now() + 300_000 });
    call.on('data', (b: QueryAccountingBatch__Output) => {
      for (const text of b.recordsJson) got.push({ text, rec: JSON.parse(text) as Record<string, unknown> });
    });
    call.on('error', (err: grpc.ServiceError) => reject(new Error(describeGrpcError(err, target))));
    call.on('end', () => resolve(got));
  })).finally(() => client.close());
}

export async function runAccounting(a: AccountingArgs, io: AccountingIo): Promise<number> {
  let req: QueryAccountingRequest;
  let nodes: string[];
  try {
    req = accountingRequest(a, io.now);
    nodes = [...new Set(expandHostlist(a.nodes))];
    if (nodes.length === 0) throw new AccountingUsageError(`--nodes '${a.nodes}' names no node; give a Slurm host list such as n[1-3]`);
  } catch (err) {
    if (!(err instanceof AccountingUsageError)) throw err;
    io.err(`berth accounting: ${err.message}\n`);
    return 2;
  }
  const outcomes = await fanOut(nodes, (n) => (io.query ?? queryNode)(n, req), {
    timeoutMs: 300_000,
    describe: (err) => ({ code: 'ERROR', message: err instanceof Error ? err.message : String(err) }),
  });
  const records: QueriedRecord[] = [];
  let failed = 0;
  for (const o of outcomes) {
    if (o.ok) {
      for (const r of o.value) records.push(r);
    } else {
      failed++;
      io.err(`berth accounting: ${o.node}: ${o.error.message}\n`);
    }
  }
  records.sort((x, y) => compareRecords(x.rec, y.rec));
  io.out(a.format === 'csv' ? formatCsv(records) : formatJson(records));
  if (failed > 0) {
    io.err(failed === nodes.length
      ? `berth accounting: no node could be asked (${nodes.length}); no records\n`
      : `berth accounting: partial result: ${failed} of ${nodes.length} node(s) could not be asked; their records are missing\n`);
  }
  return fanoutExitStatus(outcomes);
}
