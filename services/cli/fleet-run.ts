// Running one admin command on many nodes (`--nodes n[001-512]`): the targets (local socket,
// or berthd's TCP listener with mutual TLS), the fan-out, and the output — a table with a
// NODE column on stdout and one line per node that did not answer on stderr, or one JSON
// document (docs/api.md) — and the exit status: 0 all answered, 3 some, 1 none.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import type { NodeAgentServiceClient } from '../shared/gen/berth/v1/NodeAgentService';
import { expandHostlist } from '../shared/hostlist';
import { type AgentTarget, agentTarget, callMetadata, type ClientTls, connect, describeGrpcError, isUnreachable, remoteTarget } from './agent-client';
import { DEFAULT_CONCURRENCY, fanOut, fanoutExitStatus, type FanoutError, type NodeOutcome } from './fanout';
import { UsageError } from './usage-error';

export interface TlsPaths {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface ConnectionOptions {
  /** berthd's TCP port; nodes are dialled over TCP when this is set or a node is NODE:PORT */
  port?: number;
  tls: TlsPaths;
  env: Record<string, string | undefined>;
}

export interface FleetOptions {
  nodes: string;
  /** per node; the command's default when absent */
  timeoutSeconds?: number;
  concurrency?: number;
  json: boolean;
  conn: ConnectionOptions;
}

export interface FleetIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface Answer<T> {
  node: string;
  value: T;
}

export interface FleetCommand<T> {
  /** the berth subcommand, for messages and the JSON document */
  name: string;
  /** the RPC (names the munge credential on the user socket) */
  method: string;
  defaultTimeoutMs: number;
  call(client: NodeAgentServiceClient, md: grpc.Metadata, deadlineMs: number, signal: AbortSignal, node: string): Promise<T>;
  /** the human table of the nodes that answered */
  render(answers: Answer<T>[]): string;
}

export function expandNodes(list: string): string[] {
  const nodes = expandHostlist(list);
  if (nodes.length === 0) throw new UsageError(`no nodes in '${list}': give --nodes NODE or a Slurm host list such as n[001-512,600]`);
  return [...new Set(nodes)];
}

function readPem(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The client's TLS files, from the flags or BERTH_TLS_CA, BERTH_TLS_CERT, BERTH_TLS_KEY. */
export function loadClientTls(paths: TlsPaths, env: Record<string, string | undefined>): ClientTls {
  const ca = paths.ca ?? env.BERTH_TLS_CA;
  const cert = paths.cert ?? env.BERTH_TLS_CERT;
  const key = paths.key ?? env.BERTH_TLS_KEY;
  const missing = [!ca && '--tls-ca', !cert && '--tls-cert', !key && '--tls-key'].filter(Boolean);
  if (missing.length) {
    throw new UsageError(`reaching berthd over TCP needs mutual TLS: give ${missing.join(', ')} (or BERTH_TLS_CA, BERTH_TLS_CERT, BERTH_TLS_KEY): the site CA and a client certificate and key it signed`);
  }
  return { ca: readPem('site CA (--tls-ca)', ca!), cert: readPem('client certificate (--tls-cert)', cert!), key: readPem('client key (--tls-key)', key!) };
}

/** Each node's target: the local socket, or TCP when a port is given (--port, BERTH_PORT or NODE:PORT). */
export function targetsFor(nodes: string[], conn: ConnectionOptions): Map<string, AgentTarget> {
  const portText = conn.port !== undefined ? String(conn.port) : conn.env.BERTH_PORT;
  const port = portText === undefined || portText === '' ? undefined : Number(portText);
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new UsageError(`--port ${portText} is not a TCP port (1-65535)`);
  const remote = port !== undefined || nodes.some((n) => /:\d+$/.test(n));
  const tls = remote ? loadClientTls(conn.tls, conn.env) : undefined;
  return new Map(nodes.map((n) => [n, tls && (port !== undefined || /:\d+$/.test(n)) ? remoteTarget(n, port, tls) : agentTarget(n, conn.env)]));
}

function describe(err: unknown, target: AgentTarget): FanoutError {
  const e = err as grpc.ServiceError;
  const message = describeGrpcError(err, target);
  if (e?.code === grpc.status.DEADLINE_EXCEEDED) return { code: 'TIMEOUT', message };
  if (isUnreachable(err) || /refused the TLS handshake/.test(message)) return { code: 'UNREACHABLE', message };
  const name = typeof e?.code === 'number' ? grpc.status[e.code] : undefined;
  return { code: name ?? 'ERROR', message };
}

/** The JSON document of a fan-out (docs/api.md: "Admin commands' JSON"). */
export function fleetJson<T>(command: string, outcomes: NodeOutcome<T>[]): string {
  return JSON.stringify({
    command,
    asked: outcomes.length,
    answered: outcomes.filter((o) => o.ok).length,
    nodes: outcomes.map((o) => (o.ok
      ? { node: o.node, ok: true, millis: o.millis, result: o.value }
      : { node: o.node, ok: false, millis: o.millis, error: o.error })),
  }, null, 2) + '\n';
}

/** Asks every node; returns the outcomes in the order of the nodes. */
export function askNodes<T>(cmd: Pick<FleetCommand<T>, 'method' | 'call' | 'defaultTimeoutMs'>, nodes: string[], opts: Omit<FleetOptions, 'nodes' | 'json'>, onSettled?: (o: NodeOutcome<T>) => void): Promise<NodeOutcome<T>[]> {
  const targets = targetsFor(nodes, opts.conn);
  const timeoutMs = opts.timeoutSeconds !== undefined ? opts.timeoutSeconds * 1000 : cmd.defaultTimeoutMs;
  if (!(timeoutMs > 0)) throw new UsageError(`--timeout ${opts.timeoutSeconds} must be a positive number of seconds`);
  return fanOut(nodes, async (node, signal) => {
    const target = targets.get(node)!;
    const client = connect(target);
    try {
      const md = await callMetadata(target, cmd.method, '');
      // the RPC's own deadline a little past the fan-out's, so that a hung node shows as TIMEOUT
      return await cmd.call(client, md, timeoutMs + 1000, signal, node);
    } catch (err) {
      throw Object.assign(new Error(describe(err, target).message), { fanout: describe(err, target) });
    } finally {
      client.close();
    }
  }, {
    timeoutMs,
    concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
    describe: (err) => (err as { fanout?: FanoutError }).fanout ?? { code: 'ERROR', message: (err as Error).message },
    onSettled,
  });
}

export async function runFleet<T>(cmd: FleetCommand<T>, opts: FleetOptions, io: FleetIo): Promise<number> {
  const nodes = expandNodes(opts.nodes);
  const outcomes = await askNodes(cmd, nodes, opts);
  if (opts.json) {
    io.out(fleetJson(cmd.name, outcomes));
  } else {
    const answers = outcomes.flatMap((o) => (o.ok ? [{ node: o.node, value: o.value }] : []));
    if (answers.length) io.out(cmd.render(answers));
    for (const o of outcomes) if (!o.ok) io.err(`berth ${cmd.name}: ${o.node}: ${o.error.message}\n`);
    const failed = outcomes.length - answers.length;
    if (failed && outcomes.length > 1) io.err(`berth ${cmd.name}: ${answers.length} of ${outcomes.length} node(s) answered\n`);
  }
  return fanoutExitStatus(outcomes);
}
