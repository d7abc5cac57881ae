// The EventWriter as a whole against the real kube-apiserver of test/setup/controlplane.ts: what depends
// on the API server's own answers (AlreadyExists after a restart, a deleted Event, RBAC, an outage). The
// only stand-in is a wrapper that counts the adapter's calls; every call reaches the API server. Rate,
// burst, priority, deadlines and accounting are proven on a fake clock in writer-clock.test.ts.

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { CoreV1Event } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { Counter } from 'prom-client';
import { beforeAll, describe, expect, inject, it, vi } from 'vitest';
import {
  createEventApi,
  type EventApi,
  type EventCount,
  LAST_DROP_ANNOTATION,
  type Verb,
} from '../../agent/events/api.ts';
import type { CoreEvent } from '../../agent/events/event.ts';
import { rfc3339 } from '../../agent/events/event.ts';
import { EventWriter, type WriterConfig } from '../../agent/events/writer.ts';
import { Metrics } from '../../agent/metrics.ts';
import type { EventIntent, PodRef } from '../../agent/types.ts';
import { config, drop, pod } from '../pipeline/fixtures.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  createServiceAccount,
  createToken,
  kubectl,
  tokenKubeconfig,
  uniqueName,
} from '../support/cluster.ts';

const testenvCli = fileURLToPath(new URL('../testenv/cli.ts', import.meta.url));

/** Counts the adapter's calls on a monotonic clock; the calls themselves go to the API server. */
class CountingApi implements EventApi {
  readonly calls: { verb: Verb; at: number }[] = [];
  private readonly inner: EventApi;

  constructor(inner: EventApi) {
    this.inner = inner;
  }

  create(event: CoreEvent, lastDropMs: number): Promise<void> {
    this.calls.push({ verb: 'create', at: performance.now() });
    return this.inner.create(event, lastDropMs);
  }

  read(namespace: string, name: string): Promise<EventCount> {
    this.calls.push({ verb: 'get', at: performance.now() });
    return this.inner.read(namespace, name);
  }

  patch(namespace: string, name: string, tally: EventCount, text?: string): Promise<void> {
    this.calls.push({ verb: 'patch', at: performance.now() });
    return this.inner.patch(namespace, name, tally, text);
  }

  verbs(): Verb[] {
    return this.calls.map((call) => call.verb);
  }
}

interface Harness {
  writer: EventWriter;
  api: CountingApi;
  metrics: Metrics;
  logs: { level: number; msg: string; [field: string]: unknown }[];
}

function harness(api: EventApi, settings: Partial<WriterConfig> = {}, now?: () => number): Harness {
  const metrics = new Metrics();
  const logs: Harness['logs'] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const counting = new CountingApi(api);
  const writerConfig = { ...config(), ...settings };
  const writer = new EventWriter({
    api: counting,
    config: writerConfig,
    metrics,
    log,
    ...(now ? { now } : {}),
  });
  return { writer, api: counting, metrics, logs };
}

function message(peer: string): string {
  return `Packet dropped when sending traffic to ${peer} (10.4.0.16) on port 12865/TCP`;
}

function intent(target: PodRef, time: number, peer = 'server'): EventIntent {
  return {
    pod: target,
    direction: 'send',
    message: message(peer),
    subject: message(peer),
    combined: false,
    related: undefined,
    time,
    host: 'node-a',
    drop: drop({ time, host: 'node-a' }),
  };
}

async function createPods(c: Cluster, namespace: string, count: number): Promise<PodRef[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const created = await createPod(c, { namespace, name: `pod-${i}`, nodeName: 'node-a' });
      return pod({ namespace, name: `pod-${i}`, uid: created.metadata?.uid ?? '', nodeName: 'node-a' });
    }),
  );
}

async function events(c: Cluster, namespace: string): Promise<CoreV1Event[]> {
  return (await c.core.listNamespacedEvent({ namespace })).items;
}

async function byReason(counter: Counter): Promise<Record<string, number>> {
  const { values } = await counter.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.reason), v.value]));
}

async function total(counter: Counter): Promise<number> {
  return (await counter.get()).values.reduce((sum, v) => sum + v.value, 0);
}

async function depth(metrics: Metrics): Promise<number> {
  return (await metrics.queueDepth.get()).values[0]?.value ?? 0;
}

/** Until every submitted intent is written or dropped: nothing pending, nothing in flight. */
async function idle(metrics: Metrics, timeout = 15_000): Promise<void> {
  await vi.waitFor(async () => expect(await depth(metrics)).toBe(0), { timeout, interval: 50 });
}

/** A time in the middle of a second, a little in the past, so rounding to seconds shows. */
function recent(): number {
  return Math.floor(Date.now() / 1000) * 1000 - 20_000 + 250;
}

function testenv(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [testenvCli, command], { env }, (err, stdout, stderr) =>
      err ? reject(new Error(`testenv ${command}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

describe('EventWriter', () => {
  let c: Cluster;

  beforeAll(() => {
    c = connect(inject('kubeconfig'));
  });

  it('creates one Event and patches it for repeats: count, timestamps, exact last drop', async () => {
    const namespace = await createNamespace(c);
    const [p] = await createPods(c, namespace, 1);
    if (!p) throw new Error('no pod');
    const h = harness(createEventApi(c.kc));
    const t = recent();

    h.writer.submit(intent(p, t));
    await idle(h.metrics);
    const [created] = await events(c, namespace);
    expect(created?.count).toBe(1);
    expect(created?.involvedObject).toMatchObject({ kind: 'Pod', name: p.name, uid: p.uid });
    expect(created?.firstTimestamp?.toISOString()).toBe(new Date(rfc3339(t)).toISOString());

    // Repeats that arrive together merge into a single PATCH.
    for (const dt of [1000, 2000, 3000]) h.writer.submit(intent(p, t + dt));
    await idle(h.metrics);
    const listed = JSON.parse(await kubectl(c, ['get', 'events', '-n', namespace, '-o', 'json'])) as {
      items: {
        count: number;
        firstTimestamp: string;
        lastTimestamp: string;
        metadata: { annotations: Record<string, string> };
      }[];
    };
    expect(listed.items).toHaveLength(1);
    expect(listed.items[0]).toMatchObject({
      count: 4,
      firstTimestamp: rfc3339(t),
      lastTimestamp: rfc3339(t + 3000),
      metadata: { annotations: { [LAST_DROP_ANNOTATION]: String(t + 3000) } },
    });
    expect(h.api.verbs()).toEqual(['create', 'patch']);
    expect(await total(h.metrics.eventsCreated)).toBe(1);
    expect(await total(h.metrics.eventsPatched)).toBe(1);
    expect(await total(h.metrics.eventsDropped)).toBe(0);
    await h.writer.flush(1000);
  });

  it('creates the Event anew once it is gone (expired or deleted)', async () => {
    const namespace = await createNamespace(c);
    const [p] = await createPods(c, namespace, 1);
    if (!p) throw new Error('no pod');
    const h = harness(createEventApi(c.kc));
    const t = recent();

    h.writer.submit(intent(p, t));
    await idle(h.metrics);
    const [first] = await events(c, namespace);
    await c.core.deleteNamespacedEvent({ namespace, name: first?.metadata?.name ?? '' });

    h.writer.submit(intent(p, t + 5000));
    await idle(h.metrics);
    const [again] = await events(c, namespace);
    expect(again?.metadata?.name).toBe(first?.metadata?.name);
    expect(again?.count).toBe(1);
    expect(again?.firstTimestamp?.toISOString()).toBe(new Date(rfc3339(t + 5000)).toISOString());
    expect(h.api.verbs()).toEqual(['create', 'patch', 'create']);
    await h.writer.flush(1000);
  });

  it('after a restart, counts re-read drops once and newer ones on top', async () => {
    const namespace = await createNamespace(c);
    const [p] = await createPods(c, namespace, 1);
    if (!p) throw new Error('no pod');
    const t = recent();
    const times = Array.from({ length: 8 }, (_, i) => t + i * 137);
    const eventOf = async () => {
      const [event] = await events(c, namespace);
      return { count: event?.count, last: event?.metadata?.annotations?.[LAST_DROP_ANNOTATION] };
    };

    const before = harness(createEventApi(c.kc));
    for (const time of times.slice(0, 5)) before.writer.submit(intent(p, time));
    await before.writer.flush(5000);
    expect(await eventOf()).toEqual({ count: 5, last: String(times[4]) });

    // The restarted agent reads the lines after its last checkpoint again, plus two new ones.
    const after = harness(createEventApi(c.kc));
    for (const time of times.slice(0, 7)) after.writer.submit(intent(p, time));
    await idle(after.metrics);
    expect(await eventOf()).toEqual({ count: 7, last: String(times[6]) });
    expect(after.api.verbs()).toEqual(['create', 'get', 'patch']);
    expect(await byReason(after.metrics.eventsDropped)).toEqual({ already_counted: 5 });
    // A re-read line arriving late is recognised without a call.
    after.writer.submit(intent(p, times[2] ?? 0));
    await idle(after.metrics);
    expect(after.api.verbs()).toHaveLength(3);
    expect(await byReason(after.metrics.eventsDropped)).toEqual({ already_counted: 6 });
    await after.writer.flush(1000);

    // Only old drops: nothing is written at all.
    const again = harness(createEventApi(c.kc));
    for (const time of times.slice(0, 7)) again.writer.submit(intent(p, time));
    await idle(again.metrics);
    expect(again.api.verbs()).toEqual(['create', 'get']);
    expect(await eventOf()).toEqual({ count: 7, last: String(times[6]) });
    again.writer.submit(intent(p, times[7] ?? 0));
    await idle(again.metrics);
    expect(again.api.verbs()).toEqual(['create', 'get', 'patch']);
    expect(await eventOf()).toEqual({ count: 8, last: String(times[7]) });
    await again.writer.flush(1000);
  });

  it('logs a missing RBAC permission once, naming it, counts and drops, and keeps running', async () => {
    const namespace = await createNamespace(c);
    const [p] = await createPods(c, namespace, 1);
    if (!p) throw new Error('no pod');
    const role = uniqueName('events-no-patch');
    await createServiceAccount(c, namespace, 'agent');
    await kubectl(c, ['create', 'clusterrole', role, '--verb=create,get', '--resource=events']);
    await kubectl(c, [
      'create',
      'clusterrolebinding',
      role,
      `--clusterrole=${role}`,
      `--serviceaccount=${namespace}:agent`,
    ]);
    const as = `--as=system:serviceaccount:${namespace}:agent`;
    await vi.waitFor(
      async () =>
        expect(await kubectl(c, ['auth', 'can-i', 'create', 'events', '-n', namespace, as])).toMatch(/yes/),
      {
        timeout: 10_000,
      },
    );
    const token = await createToken(c, namespace, 'agent');
    const h = harness(createEventApi(connect(await tokenKubeconfig(c, token)).kc));
    const t = recent();

    h.writer.submit(intent(p, t));
    await idle(h.metrics);
    expect(await total(h.metrics.eventsCreated)).toBe(1);
    h.writer.submit(intent(p, t + 1000));
    await idle(h.metrics);
    h.writer.submit(intent(p, t + 2000));
    h.writer.submit(intent(p, t + 3000));
    await idle(h.metrics);

    expect(h.api.verbs()).toEqual(['create', 'patch', 'patch']);
    expect(await byReason(h.metrics.eventsFailed)).toEqual({ forbidden: 2 });
    expect(await byReason(h.metrics.eventsDropped)).toEqual({ forbidden: 3 });
    const denied = h.logs.filter((line) => line.msg.startsWith('cannot '));
    expect(denied.map((line) => line.msg)).toEqual([
      `cannot patch events in namespace "${namespace}": grant verbs [patch] on resource "events" (apiGroups [""]) to the agent's ServiceAccount`,
    ]);
    expect(JSON.stringify(h.logs)).not.toContain(token);

    // Still running: a new Event is created as before.
    h.writer.submit(intent(p, t, 'other'));
    await idle(h.metrics);
    expect(await total(h.metrics.eventsCreated)).toBe(2);
    expect((await events(c, namespace)).map((e) => e.count)).toEqual([1, 1]);
    await h.writer.flush(1000);
  });

  it('holds writes through an API server outage and writes each non-expired drop exactly once', async () => {
    // Its own control plane: stopping the shared API server would break tests running beside this one.
    const dir = await mkdtemp(join(tmpdir(), 'writer-outage-'));
    const env = { ...process.env, TESTENV_DIR: dir };
    try {
      const up = JSON.parse((await testenv('up', env)).trim()) as { kubeconfig: string };
      const own = connect(up.kubeconfig);
      const namespace = await createNamespace(own);
      const pods = await createPods(own, namespace, 3);
      const [a, b1, b2] = pods;
      if (!a || !b1 || !b2) throw new Error('no pods');
      const h = harness(createEventApi(own.kc));

      h.writer.submit(intent(a, Date.now()));
      await idle(h.metrics);
      await testenv('stop-apiserver', env);
      const outage = performance.now();
      for (let i = 0; i < 10; i++) {
        h.writer.submit(intent(a, Date.now()));
        h.writer.submit(intent(i % 2 === 0 ? b1 : b2, Date.now(), `peer-${i}`));
        await sleep(1000);
      }
      expect(await depth(h.metrics)).toBe(11);
      await testenv('start-apiserver', env);
      const downMs = performance.now() - outage;
      await idle(h.metrics, 30_000);
      const recoveredMs = performance.now() - outage;

      const written = await events(own, namespace);
      const counts = Object.fromEntries(written.map((e) => [e.message, e.count]));
      expect(counts).toEqual({
        [message('server')]: 11,
        ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [message(`peer-${i}`), 1])),
      });
      expect(await total(h.metrics.eventsDropped)).toBe(0);
      expect(await total(h.metrics.eventsFailed)).toBeGreaterThan(0);
      expect(h.logs.filter((line) => line.msg.startsWith('event writes failing'))).toHaveLength(1);
      expect(h.logs.filter((line) => line.msg === 'event writes succeed again')).toHaveLength(1);
      console.log(
        `outage: API server down ${(downMs / 1000).toFixed(1)} s, queue written ${((recoveredMs - downMs) / 1000).toFixed(1)} s after restart; ` +
          `${h.api.calls.length} calls, failed by reason ${JSON.stringify(await byReason(h.metrics.eventsFailed))}`,
      );
      await h.writer.flush(1000);
    } finally {
      await testenv('down', env);
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
