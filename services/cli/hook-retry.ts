// The hooks ride out a restart of berthd. Every hook call is idempotent (a repeated prologue
// returns the running container, a repeated epilogue finds nothing left to do), so a call
// that could not reach berthd, or was cut off mid-flight by berthd going away, is made again,
// with backoff, for a bounded window (BERTH_HOOK_RETRY_SECONDS, default 60: well inside
// Slurm's PrologEpilogTimeout, long enough for systemd's Restart=always and berthd's recovery).
// An answer berthd gave is never retried here, except "berthd is recovering" (AGENT_UNAVAILABLE).
//
// An epilog that cannot reach berthd within its window leaves a record in the epilog spool
// (shared/epilog-spool.ts) and succeeds: berthd ends the job when it is back, and Slurm does
// not drain the node for an agent restart.
import * as grpc from '@grpc/grpc-js';
import type { NodeAgentServiceClient } from '../shared/gen/berth/v1/NodeAgentService';
import { epilogSpoolDir, spoolEpilog } from '../shared/epilog-spool';
import { DEFAULT_RUN_DIR } from '../shared/paths';
import { type AgentTarget, callMetadata, connect } from './agent-client';
import type { Env } from './slurm-env';

export const DEFAULT_RETRY_WINDOW_SECONDS = 60;
/** an attempt that ran this long before it was cut off reached a working berthd: the window starts again */
const SERVED_MS = 2000;
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 1000;

/** BERTH_HOOK_RETRY_SECONDS: how long a hook keeps trying to reach berthd (0: once, no retry). */
export function retryWindowMs(env: Env): number {
  const text = (env.BERTH_HOOK_RETRY_SECONDS ?? '').trim();
  if (text === '') return DEFAULT_RETRY_WINDOW_SECONDS * 1000;
  const n = Number(text);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n * 1000) : DEFAULT_RETRY_WINDOW_SECONDS * 1000;
}

/** a whole number of seconds from the environment, in milliseconds, else the default */
export function secondsFromEnv(text: string | undefined, defaultMs: number): number {
  const n = Number(text);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) * 1000 : defaultMs;
}

function berthCode(err: grpc.ServiceError): string {
  const v = err.metadata?.get?.('x-berth-error-code')?.[0];
  return typeof v === 'string' ? v : v ? v.toString() : '';
}

/**
 * Whether a failed call should be made again: berthd could not be reached (no socket, refused,
 * reset), the call was cut off mid-flight (connection dropped or reset, cancelled), or berthd
 * said it is recovering. Not: any other answer from berthd, nor the call's own deadline.
 */
export function isRetryable(err: unknown): boolean {
  const e = err as Partial<grpc.ServiceError> | null;
  if (!e || typeof e.code !== 'number') return false;
  const code = berthCode(e as grpc.ServiceError);
  if (code) return code === 'AGENT_UNAVAILABLE';
  const details = e.details ?? '';
  switch (e.code) {
    case grpc.status.UNAVAILABLE:
    case grpc.status.CANCELLED:
      return true;
    case grpc.status.INTERNAL:
    case grpc.status.UNKNOWN:
      // a stream torn down under the call; not berthd's own "internal error in berthd: ..."
      return !details.startsWith('internal error in berthd') && /RST_STREAM|ECONNRESET|EPIPE|socket hang up|Connection (dropped|closed|reset)/i.test(details);
    default:
      return false;
  }
}

/** 100 ms doubling to 1 s, ±20 %: berthd's socket comes back within a second of its start. */
export function backoffMs(retry: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(retry, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export interface RetryOptions {
  /** how long berthd may stay unreachable (ms); 0: no retry */
  windowMs: number;
  /** the whole call, retries included, ends by then (ms from now): each attempt gets what is left */
  timeoutMs: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** told of each retry (the hook logs the first on stderr) */
  onRetry?: (err: unknown, retry: number, waitedMs: number) => void;
}

export interface RetryOutcome<T> {
  value: T;
  /** attempts made (1: no retry) */
  attempts: number;
  /** time spent waiting for berthd to come back (ms) */
  waitedMs: number;
}

/** The error a call gave up with: the last one berthd's absence gave, saying how long it was retried. */
export interface GaveUp extends grpc.ServiceError {
  berthRetriedMs: number;
  berthAttempts: number;
}

export function gaveUp(err: unknown): err is GaveUp {
  return typeof (err as GaveUp | null)?.berthRetriedMs === 'number';
}

/**
 * Runs `attempt` (given the milliseconds left of the overall timeout) until it succeeds, fails
 * with an error that is not retryable, or berthd has been unreachable for the window. The
 * window counts from the first failure of an outage; an attempt that ran for a while before
 * it was cut off (berthd was serving, then went away) starts a new outage.
 */
export async function callWithRetry<T>(attempt: (remainingMs: number) => Promise<T>, o: RetryOptions): Promise<RetryOutcome<T>> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const end = now() + o.timeoutMs;
  let outageStart: number | undefined;
  let waitedMs = 0;
  for (let n = 1; ; n++) {
    const began = now();
    try {
      const value = await attempt(Math.max(1, end - began));
      return { value, attempts: n, waitedMs };
    } catch (err) {
      const t = now();
      if (!isRetryable(err)) throw err;
      if (outageStart === undefined || t - began >= SERVED_MS) outageStart = t;
      const delay = backoffMs(n - 1, o.random);
      const waited = t - outageStart;
      if (o.windowMs <= 0 || waited + delay > o.windowMs || t + delay >= end) {
        if (n === 1 && o.windowMs <= 0) throw err;
        throw withRetried(err, waited, n);
      }
      o.onRetry?.(err, n, waited);
      await sleep(delay);
      waitedMs += now() - t;
    }
  }
}

function withRetried(err: unknown, waitedMs: number, attempts: number): GaveUp {
  const e = err as grpc.ServiceError;
  const out = Object.assign(new Error(e.message), {
    code: e.code, metadata: e.metadata, details: `${e.details ?? e.message}; tried ${attempts} times over ${(waitedMs / 1000).toFixed(1)} s`,
    berthRetriedMs: waitedMs, berthAttempts: attempts,
  });
  return out as GaveUp;
}

/** a fresh channel per attempt, reconnecting at once: grpc's own backoff would delay the retry */
const CHANNEL = { 'grpc.use_local_subchannel_pool': 1, 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 };

/**
 * One hook call to the node's berthd, retried through a restart: a new client for each
 * attempt (and new metadata: a munge credential is good for one use).
 */
export function hookCall<T>(
  target: AgentTarget, method: string, jobId: string,
  invoke: (client: NodeAgentServiceClient, md: grpc.Metadata, deadlineMs: number) => Promise<T>,
  o: RetryOptions,
): Promise<RetryOutcome<T>> {
  return callWithRetry(async (remainingMs) => {
    const client = connect(target, CHANNEL);
    try {
      return await invoke(client, await callMetadata(target, method, jobId), remainingMs);
    } finally {
      client.close();
    }
  }, o);
}

export interface EpilogOutcome {
  /** false: berthd stayed unreachable and the epilog was left in the spool */
  reached: boolean;
  attempts: number;
  waitedMs: number;
  spoolFile?: string;
}

/**
 * The job's epilogue through a restart of berthd; when berthd stays unreachable for the whole
 * window, the epilog is spooled for berthd to settle when it is back, and this succeeds.
 * Any answer berthd gave (an engine refusing to remove a container) is thrown as before.
 */
export async function epilogueOrSpool(
  target: AgentTarget, jobId: string, env: Env,
  invoke: (client: NodeAgentServiceClient, md: grpc.Metadata, deadlineMs: number) => Promise<unknown>,
  o: RetryOptions & { stderr: (line: string) => void; now?: () => number },
): Promise<EpilogOutcome> {
  // the job's end, as near as the epilog knows it: when slurmd started it
  const began = (o.now ?? Date.now)();
  try {
    const r = await hookCall(target, 'JobEpilogue', jobId, invoke, o);
    return { reached: true, attempts: r.attempts, waitedMs: r.waitedMs };
  } catch (err) {
    const unreachable = gaveUp(err) || isRetryable(err) || (err as grpc.ServiceError | null)?.code === grpc.status.DEADLINE_EXCEEDED;
    if (!unreachable || target.remote) throw err;
    const e = err as Partial<GaveUp>;
    const reason = e.details ?? String(err);
    const dir = epilogSpoolDir(env.BERTH_RUN_DIR || DEFAULT_RUN_DIR, target.node);
    const file = spoolEpilog(dir, { jobId, node: target.node, time: new Date(began).toISOString(), reason });
    o.stderr(`berth epilog: job ${jobId} on ${target.node}: berthd could not be reached (${reason}); left ${file} for berthd to end the job when it is back (its containers keep running until then; the node stays in service)`);
    return { reached: false, attempts: e.berthAttempts ?? 1, waitedMs: e.berthRetriedMs ?? 0, spoolFile: file };
  }
}
