import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from './config.ts';
import type { Metrics } from './metrics.ts';

/** What /healthz and /readyz report; the agent updates it as it starts, syncs and stops. */
export interface Health {
  /** The process works (the source loop is alive). */
  live(): boolean;
  /** Each part that keeps the agent from being ready, with why; empty when ready. */
  notReady(): readonly string[];
}

/** The port the system chose (METRICS_SERVER_PORT=0), or the one asked for. */
export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}

/** Listening errors that are the configuration's fault, as a ConfigError naming METRICS_SERVER_PORT. */
function listenError(port: number, err: NodeJS.ErrnoException): Error {
  const reason =
    err.code === 'EADDRINUSE'
      ? 'the port is in use by another process'
      : err.code === 'EACCES'
        ? 'binding it needs privileges the agent lacks'
        : null;
  return reason === null
    ? err
    : new ConfigError([
        `METRICS_SERVER_PORT=${port}: ${reason}; expected a free port (0 lets the system choose one)`,
      ]);
}

/** /metrics, /healthz and /readyz on one port; nothing else is served. */
export async function startServer(port: number, metrics: Metrics, health: Health): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        () => res.writeHead(500).end('metrics unavailable\n'),
      );
      return;
    }
    if (path === '/healthz') {
      const ok = health.live();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
      return;
    }
    if (path === '/readyz') {
      const parts = health.notReady();
      const ok = parts.length === 0;
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ok ? 'ok\n' : `not ready: ${parts.join('; ')}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => reject(listenError(port, err));
    server.once('error', fail);
    server.listen(port, () => {
      server.off('error', fail);
      resolve();
    });
  });
  return server;
}
