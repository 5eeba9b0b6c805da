// Serves the Prometheus exposition of an AgentMetrics over plain HTTP: GET (or HEAD)
// /metrics, 404 for any other path, 405 for other methods. Bind it to the address the
// site's Prometheus scrapes from (config `metrics.listen`).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AgentMetrics } from './agent-metrics';
import { QUIET_HTTP } from '../quiet-http';

export interface MetricsServer {
  /** host:port actually bound (the port is chosen by the kernel when the config says 0) */
  address: string;
  close(): Promise<void>;
}

export function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(listen.slice(i + 1)) };
}

export function startMetricsServer(metrics: AgentMetrics, listen: string, onError: (err: unknown) => void): Promise<MetricsServer> {
  const server = http.createServer(QUIET_HTTP, (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: berthd serves only /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('use GET /metrics\n');
      return;
    }
    metrics.scrape().then(({ contentType, body }) => {
      res.writeHead(200, { 'content-type': contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    }, (err: unknown) => {
      onError(err);
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
    });
  });
  // a scraper that holds a connection open must not keep berthd from stopping
  server.keepAliveTimeout = 5_000;
  const { host, port } = splitListen(listen);
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot serve metrics on ${listen}: ${err.message}`)));
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      resolve({
        address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}
