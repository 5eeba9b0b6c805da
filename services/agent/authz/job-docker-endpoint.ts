// A Docker API endpoint per job, for its user: RUN_DIR/NODE/jobs/<id>.docker.sock (theirs,
// 0600), which TaskProlog makes the tasks' DOCKER_HOST. berthd passes every request on to
// the node's dockerd over its TLS port with the job's own client certificate, so dockerd's
// AuthZ plugin judges it exactly as it judges a user's direct request: this endpoint grants
// nothing. What it adds is what a user should not have to type: the job's label on the
// containers and volumes they create, and that label as a filter on listings and events, so
// `docker ps` and `docker events` show the job's own containers; and the job's values a plain
// `docker run IMAGE` leaves out (container-defaults.ts: its user and groups, memory, CPUs,
// devices, no-new-privileges, the host network), which the policy would otherwise refuse.
import { chmodSync, chownSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../logger';
import { mapAction } from '../docker-request/actions';
import { BUNDLE_CA_FILE, BUNDLE_CERT_FILE, BUNDLE_KEY_FILE } from '../certs/job-bundle';
import { addLabelFilter, USER_JOB_LABEL, USER_ROLE_LABEL } from './owner-filter';
import { applyContainerDefaults, type ContainerDefaults } from './container-defaults';
import { QUIET_HTTP } from '../quiet-http';

/** dockerd takes bodies to 1 MiB into the plugin; a create or volume body over it is passed on as is (and refused). */
const MAX_EDIT_BODY = 1024 * 1024;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'content-length']);

export interface JobEndpointOptions {
  socket: string;
  jobId: string;
  uid: number;
  gid: number;
  /** the job's DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem */
  certDir: string;
  /** dockerd's TLS host:port */
  dockerTls: string;
  /** the job's values for what a container create leaves out; undefined: none are filled in */
  defaults?: () => Promise<ContainerDefaults | undefined>;
  log: Logger;
}

export interface JobEndpoint {
  close(): Promise<void>;
}

/** What the endpoint changes in a request: the path (listing filters) and, for creates, the body. */
export function rewriteRequest(method: string, url: string, jobId: string, body: Buffer | undefined, defaults?: ContainerDefaults): { url: string; body: Buffer | undefined } {
  const mapped = mapAction(method, url);
  const action = mapped?.action;
  if (action === 'container_list' || action === 'docker_events' || action === 'volume_list') {
    return { url: addLabelFilter(url, `${USER_JOB_LABEL}=${jobId}`) ?? url, body };
  }
  if ((action === 'container_create' || action === 'volume_create') && body !== undefined && body.length > 0 && body.length <= MAX_EDIT_BODY) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return { url, body }; // dockerd's plugin refuses what it cannot read
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { url, body };
    const obj = parsed as Record<string, unknown>;
    const labels = obj.Labels && typeof obj.Labels === 'object' && !Array.isArray(obj.Labels) ? (obj.Labels as Record<string, unknown>) : {};
    obj.Labels = { ...labels, [USER_JOB_LABEL]: jobId, [USER_ROLE_LABEL]: 'user' };
    if (action === 'container_create' && defaults) applyContainerDefaults(obj, defaults);
    return { url, body: Buffer.from(JSON.stringify(obj)) };
  }
  return { url, body };
}

export async function startJobEndpoint(o: JobEndpointOptions): Promise<JobEndpoint> {
  const [host, port] = [o.dockerTls.slice(0, o.dockerTls.lastIndexOf(':')), Number(o.dockerTls.slice(o.dockerTls.lastIndexOf(':') + 1))];
  const tlsOpts = {
    host, port, servername: undefined,
    ca: readFileSync(`${o.certDir}/${BUNDLE_CA_FILE}`), cert: readFileSync(`${o.certDir}/${BUNDLE_CERT_FILE}`), key: readFileSync(`${o.certDir}/${BUNDLE_KEY_FILE}`),
  };
  const agent = new https.Agent({ ...tlsOpts, keepAlive: true, maxSockets: 32 });
  const log = o.log.child({ job: o.jobId, component: 'job-docker-endpoint' });

  const headersOf = (req: http.IncomingMessage, length: number | undefined): http.OutgoingHttpHeaders => {
    const out: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
    out.host = o.dockerTls;
    if (length !== undefined) out['content-length'] = String(length);
    return out;
  };

  const server = http.createServer(QUIET_HTTP, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      chunks.push(c);
    });
    req.on('end', () => void (async () => {
      const raw = chunks.length ? Buffer.concat(chunks, size) : undefined;
      const creates = mapAction(req.method ?? 'GET', req.url ?? '/')?.action === 'container_create';
      const defaults = creates ? await o.defaults?.().catch((err: unknown) => {
        // the policy then judges the request as the user wrote it
        log.warn('could not learn the job\'s values for a container create', { error: (err as Error).message });
        return undefined;
      }) : undefined;
      const r = rewriteRequest(req.method ?? 'GET', req.url ?? '/', o.jobId, raw, defaults);
      const hasBody = r.body !== undefined || !['GET', 'HEAD', 'DELETE'].includes(req.method ?? 'GET');
      const upstream = https.request({ agent, host, port, method: req.method, path: r.url, headers: headersOf(req, hasBody ? (r.body?.length ?? 0) : undefined) }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.statusMessage, up.headers);
        // dockerd sends the headers of a long answer (wait, events, logs -f) before its body: so does the endpoint
        res.flushHeaders();
        up.pipe(res);
      });
      upstream.on('error', (err) => {
        log.warn('dockerd did not answer the job endpoint', { error: err.message });
        if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: `berth could not reach dockerd at ${o.dockerTls}: ${err.message}` }));
      });
      res.on('close', () => upstream.destroy());
      upstream.end(r.body);
    })());
  });

  // attach and exec start: an HTTP upgrade, then raw bytes both ways
  server.on('upgrade', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const up = tls.connect(tlsOpts, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const k = req.rawHeaders[i]!;
        lines.push(`${k}: ${k.toLowerCase() === 'host' ? o.dockerTls : req.rawHeaders[i + 1]}`);
      }
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      client.pipe(up);
      up.pipe(client);
    });
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    up.on('error', end);
    client.on('error', end);
    up.on('close', () => client.end());
    client.on('close', () => up.end());
  });

  rmSync(o.socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.socket, () => resolve());
  });
  chownSync(o.socket, o.uid, o.gid);
  chmodSync(o.socket, 0o600);
  return {
    close: () => new Promise<void>((resolve) => {
      rmSync(o.socket, { force: true });
      agent.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
