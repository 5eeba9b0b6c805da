// A gRPC client for one node's berthd: the admin socket when running as root, otherwise the
// user socket with a munge credential bound to the method and job.
import * as grpc from '@grpc/grpc-js';
import type { NodeAgentServiceClient } from '../shared/gen/berth/v1/NodeAgentService';
import { encodeMunge, mungePayload } from '../shared/munge';
import { agentSockets, DEFAULT_RUN_DIR } from '../shared/paths';
import { serviceDefinition } from '../shared/service-definition';
import { MUNGE_METADATA_KEY, SERVICE_NAME } from '../shared/proto-names';

export interface AgentTarget {
  node: string;
  socket: string;
  asRoot: boolean;
}

export function agentTarget(node: string, env: Record<string, string | undefined> = process.env): AgentTarget {
  const asRoot = process.getuid?.() === 0;
  const sockets = agentSockets(env.BERTH_RUN_DIR || DEFAULT_RUN_DIR, node);
  return { node, socket: asRoot ? sockets.admin : sockets.user, asRoot };
}

export function connect(target: AgentTarget): NodeAgentServiceClient {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(SERVICE_NAME), 'NodeAgentService');
  return new Client(`unix://${target.socket}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
  }) as unknown as NodeAgentServiceClient;
}

export async function callMetadata(target: AgentTarget, method: string, jobId: string): Promise<grpc.Metadata> {
  const md = new grpc.Metadata();
  if (!target.asRoot) md.set(MUNGE_METADATA_KEY, await encodeMunge(mungePayload(method, jobId)));
  return md;
}

/** Promise form of a unary call with a deadline. */
export function unaryCall<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  req: Req, md: grpc.Metadata, deadlineMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, md, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

export function isUnreachable(err: unknown): boolean {
  const code = (err as grpc.ServiceError | null)?.code;
  const details = (err as grpc.ServiceError | null)?.details ?? '';
  return code === grpc.status.UNAVAILABLE && /No connection established|ENOENT|ECONNREFUSED|connect|Connection dropped/i.test(details);
}

export function describeGrpcError(err: unknown, target: AgentTarget): string {
  const e = err as grpc.ServiceError;
  if (isUnreachable(err)) {
    return `berthd on ${target.node} is not reachable at ${target.socket} (${e.details}); is berthd running? (systemctl status berthd, or scripts/sandbox status)`;
  }
  if (e?.code === grpc.status.DEADLINE_EXCEEDED) return `berthd on ${target.node} did not answer in time (${e.details})`;
  return e?.details || (e instanceof Error ? e.message : String(err));
}
