// Serves the AuthZ plugin to dockerd on a unix socket, and writes the spec file through
// which dockerd finds it (/etc/docker/plugins/NAME.spec → unix:///run/berth/NODE/authz.sock).
// dockerd fails closed: while this socket is gone it refuses every request, root's too.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Logger } from '../logger';
import type { Authorizer } from './authorizer';
import { AUTHZ_REQUEST, AUTHZ_RESPONSE, type AuthzAnswer, parseAuthzRequest, PLUGIN_ACTIVATE } from './plugin-protocol';
import { QUIET_HTTP } from '../quiet-http';

/** dockerd forwards bodies up to 1 MiB; its own JSON around them is bounded well below this. */
const MAX_PLUGIN_REQUEST = 4 * 1024 * 1024;

export interface PluginServer {
  socket: string;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/vnd.docker.plugins.v1+json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startPluginServer(opts: { socket: string; specFile: string; authorizer: Authorizer; log: Logger; observe?: (uri: string) => void }): Promise<PluginServer> {
  const { socket, specFile, authorizer, log } = opts;
  const server = http.createServer(QUIET_HTTP, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_PLUGIN_REQUEST) {
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      void handle(req.url ?? '', Buffer.concat(chunks).toString('utf8')).then((a) => send(res, 200, a), (err: unknown) => {
        log.error('authz plugin failed; denying', { url: req.url, error: String(err) });
        // a failing plugin must deny, never allow
        send(res, 200, { Allow: false, Msg: `berth could not decide this request (${String(err)}); try again, or ask the site admins` } satisfies AuthzAnswer);
      });
    });
  });

  async function handle(url: string, body: string): Promise<AuthzAnswer | { Implements: string[] }> {
    if (url === PLUGIN_ACTIVATE) return { Implements: ['authz'] };
    if (url !== AUTHZ_REQUEST && url !== AUTHZ_RESPONSE) return { Allow: false, Err: `unknown plugin call ${url}` };
    let parsed;
    try {
      parsed = parseAuthzRequest(body);
    } catch (err) {
      return { Allow: false, Msg: `berth could not read dockerd's authorization request: ${(err as Error).message}` };
    }
    if (url === AUTHZ_REQUEST) opts.observe?.(parsed.uri);
    return url === AUTHZ_REQUEST ? authorizer.request(parsed) : authorizer.response(parsed);
  }

  mkdirSync(path.dirname(socket), { recursive: true, mode: 0o755 });
  rmSync(socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  chmodSync(socket, 0o600);
  mkdirSync(path.dirname(specFile), { recursive: true });
  writeFileSync(specFile, `unix://${socket}\n`, { mode: 0o644 });
  log.info('authz plugin listening', { socket, spec: specFile });
  return {
    socket,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      rmSync(socket, { force: true });
    }),
  };
}
