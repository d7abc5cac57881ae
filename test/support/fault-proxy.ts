// A proxy between the agent and the real kube-apiserver that injects the faults a production API server
// shows under load or upgrade: 429 with Retry-After, slow answers, watch streams cut mid-way, 410 Gone on
// a watch. Everything else is forwarded untouched, so what the agent meets is the real server's behaviour
// with one fault at a time on top. The proxy listens on 127.0.0.1 with the API server's own certificate
// (the test environment's pki, beside its kubeconfig), so the agent verifies it with the cluster's CA as
// it would the server itself; @kubernetes/client-node sends no token over plain HTTP.

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { Cluster } from './cluster.ts';

export interface FaultRule {
  /** Any method when absent. */
  method?: string;
  /** Tested against the path with its query string, e.g. /api/v1/pods?watch=true&... */
  url: RegExp;
  /** How many requests the rule applies to; every one when absent. */
  times?: number;
  /** Answer this status instead of forwarding (with Retry-After when retryAfterSeconds is set). */
  status?: number;
  retryAfterSeconds?: number;
  /** Forward at once but hold the answer back this long: the server has acted, the client waits. */
  holdResponseMs?: number;
  /** Answer a watch with one ERROR event carrying a 410 Expired Status, as a server that compacted does. */
  gone?: boolean;
}

export interface ProxiedRequest {
  method: string;
  url: string;
  /** The status the client got (0 when its connection was cut before an answer). */
  status: number;
  /** Date.now() when the request arrived. */
  at: number;
  /** Which rule shaped the answer, by its index in the order added; null when forwarded untouched. */
  rule: number | null;
  /** Bytes of the answer's body forwarded so far, as the API server sent them (compressed if it did). */
  bytes: number;
}

interface ActiveRule extends FaultRule {
  index: number;
  used: number;
}

interface Upstream {
  host: string;
  port: number;
  ca: Buffer;
  caData: string;
}

function upstreamOf(kc: KubeConfig): Upstream {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server);
  const ca = cluster.caData
    ? Buffer.from(cluster.caData, 'base64')
    : cluster.caFile
      ? readFileSync(cluster.caFile)
      : null;
  if (ca === null) throw new Error(`no CA for ${cluster.server}`);
  return { host: url.hostname, port: Number(url.port || 443), ca, caData: ca.toString('base64') };
}

function statusBody(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
}

export class FaultProxy {
  readonly requests: ProxiedRequest[] = [];
  private readonly rules: ActiveRule[] = [];
  private readonly server: Server;
  private readonly upstream: Upstream;
  /** Open client responses of watches, to cut them on demand. */
  private readonly streams = new Set<{ url: string; socket: Socket }>();
  private readonly sockets = new Set<Socket>();
  private port = 0;

  private constructor(upstream: Upstream, pki: string) {
    this.upstream = upstream;
    const tls = {
      cert: readFileSync(join(pki, 'apiserver.crt')),
      key: readFileSync(join(pki, 'apiserver.key')),
    };
    this.server = createServer(tls, (req, res) => this.handle(req, res));
    this.server.on('secureConnection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** In front of a test environment's API server (one whose pki lies beside its kubeconfig). */
  static async start(cluster: Cluster): Promise<FaultProxy> {
    const proxy = new FaultProxy(upstreamOf(cluster.kc), join(dirname(cluster.kubeconfig), 'pki'));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    const address = proxy.server.address();
    proxy.port = typeof address === 'object' && address ? address.port : 0;
    return proxy;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** A kubeconfig for the proxy that authenticates with only this bearer token; returns its text. */
  kubeconfig(token: string): string {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'proxy', server: this.url, caData: this.upstream.caData, skipTLSVerify: false }],
      users: [{ name: 'token', token }],
      contexts: [{ name: 'proxy', cluster: 'proxy', user: 'token' }],
      currentContext: 'proxy',
    });
    return kc.exportConfig();
  }

  add(rule: FaultRule): void {
    this.rules.push({ ...rule, index: this.rules.length, used: 0 });
  }

  /** Destroys the open watch streams whose URL matches: the agent sees its connection drop mid-stream. */
  cut(url: RegExp): number {
    let cut = 0;
    for (const stream of this.streams) {
      if (!url.test(stream.url)) continue;
      stream.socket.destroy();
      this.streams.delete(stream);
      cut++;
    }
    return cut;
  }

  /** The requests so far that match. */
  seen(method: string, url: RegExp): ProxiedRequest[] {
    return this.requests.filter((r) => r.method === method && url.test(r.url));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private match(req: IncomingMessage): ActiveRule | null {
    for (const rule of this.rules) {
      if (rule.method !== undefined && rule.method !== req.method) continue;
      if (!rule.url.test(req.url ?? '')) continue;
      if (rule.times !== undefined && rule.used >= rule.times) continue;
      rule.used++;
      return rule;
    }
    return null;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const entry: ProxiedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      status: 0,
      at: Date.now(),
      rule: null,
      bytes: 0,
    };
    this.requests.push(entry);
    const rule = this.match(req);
    entry.rule = rule?.index ?? null;
    const answer = (status: number, headers: Record<string, string>, body: string): void => {
      entry.status = status;
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(body);
    };
    if (rule?.status !== undefined) {
      req.resume();
      const retryAfter: Record<string, string> =
        rule.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(rule.retryAfterSeconds) };
      answer(
        rule.status,
        retryAfter,
        statusBody(rule.status, 'TooManyRequests', 'injected by the fault proxy'),
      );
      return;
    }
    if (rule?.gone) {
      req.resume();
      const status = JSON.parse(
        statusBody(410, 'Expired', 'too old resource version (fault proxy)'),
      ) as object;
      answer(200, {}, `${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    this.forward(req, res, entry, rule?.holdResponseMs ?? 0);
  }

  private forward(req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, holdMs: number): void {
    const upstream = httpsRequest(
      {
        host: this.upstream.host,
        port: this.upstream.port,
        ca: this.upstream.ca,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: `${this.upstream.host}:${this.upstream.port}` },
      },
      (answer) => {
        const deliver = (): void => {
          if (res.destroyed) {
            answer.destroy();
            return;
          }
          entry.status = answer.statusCode ?? 0;
          res.writeHead(entry.status, answer.headers);
          // As the API server does: a watch with nothing to report yet must still show it has begun.
          res.flushHeaders();
          answer.on('data', (chunk: Buffer) => {
            entry.bytes += chunk.length;
          });
          answer.pipe(res);
          if (/[?&]watch=(true|1)/.test(entry.url)) {
            const stream = { url: entry.url, socket: res.socket as Socket };
            this.streams.add(stream);
            res.once('close', () => {
              this.streams.delete(stream);
              answer.destroy();
            });
          }
        };
        if (holdMs > 0) setTimeout(deliver, holdMs);
        else deliver();
      },
    );
    // A request the client gave up on still runs to its end upstream, as it would on a real network.
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }
}
