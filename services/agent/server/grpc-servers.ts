// Binds berthd's two unix sockets: admin.sock (0600, root: trusted) and user.sock (0666,
// munge-authenticated), and with remote access configured a TCP listener with mutual TLS
// (roles per client identity). Each gets the agent service, grpc.health.v1 and reflection.
// Health follows the lifecycle only (recovering and stopping: NOT_SERVING); an admin's drain
// leaves it SERVING, since running jobs' steps and epilogues are still served (docs/operations.md).
import * as grpc from '@grpc/grpc-js';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { agentSockets } from '../../shared/paths';
import { SERVICE_NAME } from '../../shared/proto-names';
import { serviceDefinition } from '../../shared/service-definition';
import type { Trust } from '../auth/caller';
import type { RemoteTls } from '../config';
import type { Lifecycle } from '../lifecycle';
import { type AgentServiceDeps, makeAgentHandlers } from './agent-service';
import { HealthService } from './health-service';
import { addReflection } from './reflection';

export interface BoundServers {
  sockets: { admin: string; user: string };
  /** HOST:PORT of the TCP listener, when remote access is on */
  tcp?: string;
  shutdown(graceMs: number): Promise<void>;
}

function bind(server: grpc.Server, socket: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new Error(`cannot listen on ${socket}: ${err.message}`)) : resolve()));
  });
}

function bindTcp(server: grpc.Server, tls: RemoteTls): Promise<number> {
  // checkClientCertificate: a client without a certificate the site CA signed fails the handshake
  const creds = grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
  return new Promise((resolve, reject) => {
    server.bindAsync(tls.listen, creds, (err, port) => (err ? reject(new Error(`cannot listen on ${tls.listen} (remoteAccess.listen): ${err.message}`)) : resolve(port)));
  });
}

export async function startServers(runDir: string, deps: AgentServiceDeps, lifecycle: Lifecycle, remote?: RemoteTls): Promise<BoundServers> {
  const sockets = agentSockets(runDir, deps.node);
  mkdirSync(path.dirname(sockets.admin), { recursive: true, mode: 0o755 });
  chmodSync(path.dirname(sockets.admin), 0o755);
  const definition = serviceDefinition(SERVICE_NAME);
  const health = new HealthService({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  lifecycle.onChange((phase) => {
    const st = phase === 'serving' ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', st);
    health.setStatus(SERVICE_NAME, st);
  });
  const servers: grpc.Server[] = [];
  for (const [trust, socket, mode] of [['admin-socket', sockets.admin, 0o600], ['user-socket', sockets.user, 0o666]] as [Trust, string, number][]) {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 8 * 1024 * 1024 });
    server.addService(definition, makeAgentHandlers(trust, deps) as unknown as grpc.UntypedServiceImplementation);
    health.addToServer(server);
    addReflection(server);
    rmSync(socket, { force: true });
    const oldMask = process.umask(0o177);
    try {
      await bind(server, socket);
    } finally {
      process.umask(oldMask);
    }
    chmodSync(socket, mode);
    servers.push(server);
  }
  let tcp: string | undefined;
  if (remote) {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 8 * 1024 * 1024 });
    server.addService(definition, makeAgentHandlers('tcp', deps) as unknown as grpc.UntypedServiceImplementation);
    health.addToServer(server);
    addReflection(server);
    const port = await bindTcp(server, remote);
    tcp = `${remote.listen.slice(0, remote.listen.lastIndexOf(':'))}:${port}`;
    servers.push(server);
  }
  return {
    sockets,
    tcp,
    shutdown: async (graceMs) => {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        const t = setTimeout(() => { s.forceShutdown(); resolve(); }, graceMs);
        s.tryShutdown(() => { clearTimeout(t); resolve(); });
      })));
      rmSync(sockets.admin, { force: true });
      rmSync(sockets.user, { force: true });
    },
  };
}
