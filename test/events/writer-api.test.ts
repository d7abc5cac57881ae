// The EventApi adapter against the real kube-apiserver of test/setup/controlplane.ts.

import { createServer, type Server, type Socket } from 'node:net';
import { EventsV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import {
  createEventApi,
  type EventApi,
  EventApiError,
  LAST_DROP_ANNOTATION,
} from '../../agent/events/api.ts';
import { type CoreEvent, eventBody } from '../../agent/events/event.ts';
import { parseRetryAfter } from '../../agent/kube/errors.ts';
import type { EventIntent } from '../../agent/types.ts';
import { drop, pod } from '../pipeline/fixtures.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createServiceAccount,
  createToken,
  tokenKubeconfig,
  uniqueName,
} from '../support/cluster.ts';

const config = { eventReason: 'PacketDrop', eventSourceComponent: 'kube-iptables-tailer' };
const T = Date.parse('2026-01-02T03:04:05.678Z');

function eventFor(
  namespace: string,
  message: string,
  count = 1,
  related?: EventIntent['related'],
): CoreEvent {
  const intent: EventIntent = {
    pod: pod({ namespace, name: 'web-1', uid: 'uid-web-1' }),
    direction: 'send',
    message,
    subject: message,
    combined: false,
    related,
    time: T,
    host: 'node-a',
    drop: drop({ time: T }),
  };
  return eventBody(intent, config, { count, first: T, last: T });
}

async function failure(promise: Promise<unknown>): Promise<EventApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof EventApiError)) throw new Error(`expected an EventApiError, got ${String(err)}`);
  return err;
}

/** A KubeConfig for a server at `url` that the client trusts blindly: for network failures only. */
function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
    currentContext: 'c',
  });
  return kc;
}

describe('EventApi over CoreV1Api', () => {
  let c: Cluster;
  let api: EventApi;
  let namespace: string;

  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    api = createEventApi(c.kc);
    namespace = await createNamespace(c);
  });

  it('creates an Event with the exact last drop time in an annotation, and reads it back', async () => {
    const event = eventFor(namespace, 'created', 2);
    await api.create(event, T);
    const stored = await c.core.readNamespacedEvent({ namespace, name: event.metadata.name });
    expect(stored.count).toBe(2);
    expect(stored.reason).toBe('PacketDrop');
    expect(stored.involvedObject).toMatchObject({ kind: 'Pod', name: 'web-1', uid: 'uid-web-1' });
    expect(stored.firstTimestamp?.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(stored.metadata?.annotations?.[LAST_DROP_ANNOTATION]).toBe(String(T));
    expect(await api.read(namespace, event.metadata.name)).toEqual({ count: 2, lastDropMs: T });
  });

  it('patches count, lastTimestamp and the annotation as a merge patch, leaving the rest', async () => {
    const event = eventFor(namespace, 'patched');
    await api.create(event, T);
    await api.patch(namespace, event.metadata.name, { count: 7, lastDropMs: T + 61_500 });
    const stored = await c.core.readNamespacedEvent({ namespace, name: event.metadata.name });
    expect(stored.count).toBe(7);
    expect(stored.lastTimestamp?.toISOString()).toBe('2026-01-02T03:05:07.000Z');
    expect(stored.firstTimestamp?.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(stored.message).toBe('patched');
    expect(stored.metadata?.annotations?.[LAST_DROP_ANNOTATION]).toBe(String(T + 61_500));
  });

  it('writes one Event that events.k8s.io/v1 shows whole: regarding, related, note, action, series', async () => {
    const peer = pod({ namespace: 'other', name: 'db-0', uid: 'uid-db-0' });
    const event = eventFor(namespace, 'modern', 1, peer);
    await api.create(event, T);
    const events = c.kc.makeApiClient(EventsV1Api);
    const created = await events.readNamespacedEvent({ namespace, name: event.metadata.name });
    expect(created).toMatchObject({
      regarding: { kind: 'Pod', namespace, name: 'web-1', uid: 'uid-web-1' },
      related: { kind: 'Pod', namespace: 'other', name: 'db-0', uid: 'uid-db-0' },
      note: 'modern',
      action: 'Drop',
      reason: 'PacketDrop',
      type: 'Warning',
      reportingController: 'kube-iptables-tailer',
      reportingInstance: 'node-a',
      deprecatedCount: 1,
      deprecatedSource: { component: 'kube-iptables-tailer', host: 'node-a' },
    });
    // Serialised as the API gave it, six fraction digits (client-node hands the text back untyped).
    expect(JSON.parse(JSON.stringify(created.eventTime))).toBe('2026-01-02T03:04:05.678000Z');
    expect(created.series).toBeUndefined();

    await api.patch(namespace, event.metadata.name, { count: 4, lastDropMs: T + 61_500 });
    const counted = await events.readNamespacedEvent({ namespace, name: event.metadata.name });
    expect(counted.series?.count).toBe(4);
    expect(JSON.parse(JSON.stringify(counted.series?.lastObservedTime))).toBe('2026-01-02T03:05:07.178000Z');
    expect(counted.deprecatedCount).toBe(4);
    const core = await c.core.readNamespacedEvent({ namespace, name: event.metadata.name });
    expect([core.count, core.message, core.source?.component]).toEqual([4, 'modern', 'kube-iptables-tailer']);
  });

  it('reads an Event without the annotation as counting all of its last second', async () => {
    const name = uniqueName('foreign');
    await c.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { name },
        involvedObject: { kind: 'Pod', namespace, name: 'web-1' },
        reason: 'PacketDrop',
        message: 'foreign',
        count: 3,
        lastTimestamp: new Date(T),
      },
    });
    expect(await api.read(namespace, name)).toEqual({
      count: 3,
      lastDropMs: Math.floor(T / 1000) * 1000 + 999,
    });
  });

  it('classifies the answers the writer acts on', async () => {
    const event = eventFor(namespace, 'classified');
    await api.create(event, T);
    expect(await failure(api.create(event, T))).toMatchObject({
      verb: 'create',
      kind: 'already_exists',
      status: 409,
    });
    expect(await failure(api.read(namespace, 'missing'))).toMatchObject({ verb: 'patch', kind: 'not_found' });
    expect(await failure(api.patch(namespace, 'missing', { count: 2, lastDropMs: T }))).toMatchObject({
      verb: 'patch',
      kind: 'not_found',
      status: 404,
    });
    const gone = await failure(api.create(eventFor('no-such-namespace', 'x'), T));
    expect(gone).toMatchObject({ verb: 'create', kind: 'not_found' });
  });

  it('classifies an Event the API refuses as rejected, with the server reason', async () => {
    const event = eventFor(namespace, 'x'.repeat(1025));
    const err = await failure(api.create(event, T));
    expect(err).toMatchObject({ kind: 'rejected', reason: 'invalid', status: 422 });
    expect(err.message).toMatch(/message: .*at most 1024 characters/);
  });

  it('classifies an RBAC denial as forbidden, with the server message and no credentials', async () => {
    await createServiceAccount(c, namespace, 'nobody');
    const token = await createToken(c, namespace, 'nobody');
    const kc = new KubeConfig();
    kc.loadFromFile(await tokenKubeconfig(c, token));
    const err = await failure(createEventApi(kc).create(eventFor(namespace, 'denied'), T));
    expect(err).toMatchObject({ verb: 'create', kind: 'forbidden', reason: 'forbidden', status: 403 });
    expect(err.message).toMatch(/cannot create resource "events"/);
    expect(JSON.stringify({ ...err, message: err.message })).not.toContain(token);
  });

  describe('without an answer', () => {
    let silent: Server;
    const sockets: Socket[] = [];
    let port = 0;

    beforeAll(async () => {
      // Accepts connections and never answers: a black-holed API server.
      silent = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const address = silent.address();
      port = typeof address === 'object' && address !== null ? address.port : 0;
    });

    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it('gives up on a request after the timeout, as retryable', async () => {
      // The timeout's signal, fired by hand once the request hangs: the test proves the timeout asked
      // for and what its firing does, without waiting for it.
      const asked: number[] = [];
      const timeout = new AbortController();
      const spy = vi.spyOn(AbortSignal, 'timeout').mockImplementation((ms) => {
        asked.push(ms);
        return timeout.signal;
      });
      try {
        const connected = sockets.length;
        const pending = failure(
          createEventApi(kubeConfigFor(`https://127.0.0.1:${port}`), 300).read('x', 'y'),
        );
        await vi.waitFor(() => expect(sockets.length).toBeGreaterThan(connected));
        timeout.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
        const err = await pending;
        expect(asked).toEqual([300]);
        expect(err).toMatchObject({ kind: 'retry', reason: 'timeout', status: null });
      } finally {
        spy.mockRestore();
      }
    });

    it('classifies a refused connection as retryable, naming only the error code', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const address = closed.address();
      await new Promise((resolve) => closed.close(resolve));
      const url = `https://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 1}`;
      const err = await failure(createEventApi(kubeConfigFor(url)).read('x', 'y'));
      expect(err).toMatchObject({ kind: 'retry', reason: 'network', status: null, message: 'ECONNREFUSED' });
    });
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('Fri, 02 Jan 2026 03:04:10 GMT', Date.parse('2026-01-02T03:04:05Z'))).toBe(5000);
    expect(parseRetryAfter(undefined)).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
  });
});
