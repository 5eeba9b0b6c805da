// A gRPC client for one node's berthd: the admin socket when running as root, otherwise the
// user socket with a munge credential bound to the method and job; or, for admins off the
// node, berthd's TCP listener with mutual TLS (the client certificate is the identity).
import * as grpc from '@grpc/grpc-js';
import type { NodeAgentServiceClient } from '../shared/gen/berth/v1/NodeAgentService';
import { encodeMunge, mungePayload } from '../shared/munge';
import { agentSockets, DEFAULT_RUN_DIR } from '../shared/paths';
import { serviceDefinition } from '../shared/service-definition';
import { MUNGE_METADATA_KEY, SERVICE_NAME } from '../shared/proto-names';

/** PEM contents of the site CA and of this client's certificate and key */
export interface ClientTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface AgentTarget {
  node: string;
  socket: string;
  asRoot: boolean;
  /** berthd's TCP listener (HOST:PORT) and the client's TLS files, instead of the local socket */
  remote?: { address: string; tls: ClientTls };
}

/** NODE over TCP: NODE:PORT as given, else NODE with PORT. */
export function remoteTarget(node: string, port: number | undefined, tls: ClientTls): AgentTarget {
  const hasPort = /:\d+$/.test(node);
  if (!hasPort && port === undefined) throw new Error(`no port for ${node}: give --port or NODE:PORT`);
  return { node, socket: '', asRoot: false, remote: { address: hasPort ? node : `${node}:${port}`, tls } };
}

export function agentTarget(node: string, env: Record<string, string | undefined> = process.env): AgentTarget {
  const asRoot = process.getuid?.() === 0;
  const sockets = agentSockets(env.BERTH_RUN_DIR || DEFAULT_RUN_DIR, node);
  return { node, socket: asRoot ? sockets.admin : sockets.user, asRoot };
}

export function connect(target: AgentTarget, channelOptions: grpc.ChannelOptions = {}): NodeAgentServiceClient {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(SERVICE_NAME), 'NodeAgentService');
  const options = { 'grpc.max_receive_message_length': 8 * 1024 * 1024, ...channelOptions };
  if (target.remote) {
    const { address, tls } = target.remote;
    return new Client(address, grpc.credentials.createSsl(tls.ca, tls.key, tls.cert), options) as unknown as NodeAgentServiceClient;
  }
  return new Client(`unix://${target.socket}`, grpc.credentials.createInsecure(), options) as unknown as NodeAgentServiceClient;
}

export async function callMetadata(target: AgentTarget, method: string, jobId: string): Promise<grpc.Metadata> {
  const md = new grpc.Metadata();
  if (!target.asRoot && !target.remote) md.set(MUNGE_METADATA_KEY, await encodeMunge(mungePayload(method, jobId)));
  return md;
}

/** Promise form of a unary call with a deadline. */
export function unaryCall<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  req: Req, md: grpc.Metadata, deadlineMs: number,
): Promise<Res> {
  return unaryCallAbortable(fn, req, md, deadlineMs);
}

/** A unary call with a deadline that SIGNAL cancels (a fan-out giving up on a node). */
export function unaryCallAbortable<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  req: Req, md: grpc.Metadata, deadlineMs: number, signal?: AbortSignal,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = fn(req, md, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as Res))) as { cancel?: () => void } | undefined;
    signal?.addEventListener('abort', () => call?.cancel?.(), { once: true });
  });
}

export function isUnreachable(err: unknown): boolean {
  const code = (err as grpc.ServiceError | null)?.code;
  const details = (err as grpc.ServiceError | null)?.details ?? '';
  return code === grpc.status.UNAVAILABLE && /No connection established|ENOENT|ECONNREFUSED|connect|Connection dropped/i.test(details);
}

export function describeGrpcError(err: unknown, target: AgentTarget): string {
  const e = err as grpc.ServiceError;
  if (target.remote && e?.code === grpc.status.UNAVAILABLE && /handshake|certificate|SSL|TLS|alert/i.test(e.details ?? '')) {
    return `berthd on ${target.node} refused the TLS handshake at ${target.remote.address} (${e.details}); check --tls-ca/--tls-cert/--tls-key: the certificate must be signed by the site CA berthd trusts (remoteAccess.caFile)`;
  }
  if (isUnreachable(err)) {
    const where = target.remote ? target.remote.address : target.socket;
    const hint = target.remote
      ? 'is berthd listening there (remoteAccess.listen), and does the site CA berthd trusts (remoteAccess.caFile) sign --tls-cert?'
      : 'is berthd running? (systemctl status berthd, or scripts/sandbox status)';
    return `berthd on ${target.node} is not reachable at ${where} (${e.details}); ${hint}`;
  }
  if (e?.code === grpc.status.DEADLINE_EXCEEDED) return `berthd on ${target.node} did not answer in time (${e.details})`;
  return e?.details || (e instanceof Error ? e.message : String(err));
}
