// POD_WATCH_SCOPE=node against the real API server: the pod watch sees this node's pods only, and the pods
// of other nodes are looked up by address (status.podIP) when a drop names them, through a proxy that
// counts the lookups and plays an API server that is away. The lookup's clock is injected where time
// matters (miss expiry, rate), so nothing here waits for a TTL.

import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { SideEvents } from '../../agent/events/sides.ts';
import { PodDirectory } from '../../agent/locator/pod-directory.ts';
import { type LookupLimits, type LookupOutcome, PodLookup } from '../../agent/locator/pod-lookup.ts';
import { apiPodState, createPodWatch, podLister } from '../../agent/locator/pod-watch.ts';
import { createLogger } from '../../agent/log.ts';
import { Metrics } from '../../agent/metrics.ts';
import { canonicalIp } from '../../agent/net.ts';
import { Pipeline } from '../../agent/pipeline.ts';
import { config, drop, RecordingSink, value } from '../pipeline/fixtures.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  setPodRunning,
  shippedAgentToken,
} from '../support/cluster.ts';
import { FaultProxy } from '../support/fault-proxy.ts';

const LOCAL = 'node-h6-local';
const OTHER = 'node-h6-other';
const LOOKUPS = /^\/api\/v1\/pods\?.*fieldSelector=status\.podIP%3D/;
const silent = createLogger('silent');

let c: Cluster;
let proxy: FaultProxy;
let agentKc: KubeConfig;
let namespace: string;

beforeAll(async () => {
  c = connect(inject('kubeconfig'));
  namespace = await createNamespace(c);
  proxy = await FaultProxy.start(c);
  agentKc = new KubeConfig();
  // The shipped RBAC: the lookup needs no right the cluster-wide watch did not have.
  agentKc.loadFromString(proxy.kubeconfig(await shippedAgentToken(c)));
});

afterAll(async () => {
  await proxy?.close();
  await c?.core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

/** A pod of `node` reported Running with these addresses (primary first). */
async function runningPod(name: string, node: string, podIPs: string[]): Promise<void> {
  await createPod(c, { namespace, name, nodeName: node });
  await setPodRunning(c, namespace, name, { podIPs, hostIP: node === LOCAL ? '10.128.6.1' : '10.128.6.2' });
}

/** Rewrites a pod's status: its phase and when it started. */
async function setStatus(name: string, phase: string, startTime: Date): Promise<void> {
  const pod = await c.core.readNamespacedPod({ namespace, name });
  pod.status = { ...pod.status, phase, startTime };
  await c.core.replaceNamespacedPodStatus({ namespace, name, body: pod });
}

interface Agent {
  directory: PodDirectory;
  lookup: PodLookup;
  pipeline: Pipeline;
  sink: RecordingSink;
  metrics: Metrics;
  outcomes: LookupOutcome[];
  advance(ms: number): void;
  summary(): string[];
}

/** The live locator as run.ts wires it, without the watch: the tests that need one start it themselves. */
function agent(limits: Partial<LookupLimits> = {}, backoff = { initialMs: 50, maxMs: 200 }): Agent {
  let clock = 1000;
  const directory = new PodDirectory();
  const outcomes: LookupOutcome[] = [];
  const lookup = new PodLookup({
    list: podLister(agentKc),
    sink: directory.remote,
    labelKey: '',
    clock: () => clock,
    logger: silent,
    onOutcome: (outcome) => outcomes.push(outcome),
    limits,
    backoff,
  });
  const sink = new RecordingSink();
  const metrics = new Metrics();
  const settings = config({
    POD_IDENTIFIER: 'name',
    REPEATED_EVENTS_INTERVAL_MINUTES: '0',
    NODE_NAME: LOCAL,
  });
  const pipeline = new Pipeline({
    config: settings,
    locator: directory,
    sink: new SideEvents(sink, settings.repeatIntervalMs),
    metrics,
    freshness: { current: () => true },
    lookup,
  });
  return {
    directory,
    lookup,
    pipeline,
    sink,
    metrics,
    outcomes,
    advance: (ms) => {
      clock += ms;
    },
    summary: () => sink.intents.map((i) => `${i.pod.name} ${i.direction}: ${i.message}`),
  };
}

/** Releases the held drops until `done` holds: the agent's poll of release(), done by hand. */
async function releaseUntil(a: Agent, done: () => boolean): Promise<void> {
  await vi.waitFor(
    () => {
      a.pipeline.release(Date.now());
      if (!done()) throw new Error('still held');
    },
    { timeout: 10_000, interval: 20 },
  );
}

describe('the node-scoped pod watch', () => {
  it("indexes this node's Running pods, and not those of another node", async () => {
    await runningPod('local', LOCAL, ['10.62.0.1']);
    await runningPod('elsewhere', OTHER, ['10.62.0.2']);
    const directory = new PodDirectory();
    const watch = createPodWatch({
      kubeConfig: agentKc,
      sink: directory.pods,
      labelKey: '',
      nodeName: LOCAL,
      logger: silent,
    });
    watch.start();
    try {
      await watch.waitForSync();
      expect(directory.locate('10.62.0.1', Date.now()).pod?.name).toBe('local');
      expect(directory.locate('10.62.0.2', Date.now()).pod).toBeUndefined();
      // Changes come through the watch the same way: a second local pod appears, another node's does not.
      await runningPod('local-later', LOCAL, ['10.62.0.3']);
      await runningPod('elsewhere-later', OTHER, ['10.62.0.4']);
      await vi.waitFor(() => expect(directory.locate('10.62.0.3', Date.now()).pod?.name).toBe('local-later'));
      expect(directory.locate('10.62.0.4', Date.now()).pod).toBeUndefined();
      expect(
        proxy.seen(
          'GET',
          /^\/api\/v1\/pods\?.*fieldSelector=status\.phase%3DRunning%2Cspec\.nodeName%3Dnode-h6-local/,
        ).length,
      ).toBeGreaterThanOrEqual(2);
    } finally {
      await watch.stop();
    }
  });
});

describe('pods of other nodes, looked up by address', () => {
  beforeAll(async () => {
    await runningPod('client', LOCAL, ['10.63.0.1']);
  });

  /** The local client pod, as the node-scoped watch would have it. */
  async function withClient(a: Agent): Promise<void> {
    const pod = await c.core.readNamespacedPod({ namespace, name: 'client' });
    a.directory.pods.upsert(apiPodState(pod, '')!);
  }

  it('names a remote pod found by its IPv4 address, after holding the drop for the lookup', async () => {
    await runningPod('server-v4', OTHER, ['10.63.0.5']);
    const a = agent();
    await withClient(a);
    expect(
      a.pipeline.handle(drop({ src: '10.63.0.1', dst: '10.63.0.5', time: Date.now() }), Date.now()),
    ).toBe('held');
    expect(a.summary()).toEqual([]);
    await releaseUntil(a, () => a.summary().length === 2);
    expect(a.summary()).toEqual([
      'client send: Packet dropped when sending traffic to server-v4 (10.63.0.5) on port 12865/TCP',
      'server-v4 receive: Packet dropped when receiving traffic from client (10.63.0.1) on port 12865/TCP',
    ]);
    expect(a.outcomes).toContain('found');
  });

  it('names a remote pod by an IPv6 address as the kernel writes it (long form), its primary', async () => {
    await runningPod('server-v6', OTHER, ['fd00:10:244:63::5']);
    const a = agent();
    await withClient(a);
    const kernel = canonicalIp('fd00:0010:0244:0063:0000:0000:0000:0005')!;
    expect(kernel).toBe('fd00:10:244:63::5');
    a.pipeline.handle(drop({ src: '10.63.0.1', dst: kernel, time: Date.now() }), Date.now());
    await releaseUntil(a, () => a.sink.intents.length === 2);
    expect(a.summary()[1]).toBe(
      'server-v6 receive: Packet dropped when receiving traffic from client (10.63.0.1) on port 12865/TCP',
    );
  });

  it('dual-stack: finds a pod by its second address only once its first was looked up (the API selects status.podIP, podIPs[0], alone)', async () => {
    await runningPod('dual', OTHER, ['10.63.0.7', 'fd00:10:244:63::7']);
    const a = agent();
    expect(a.lookup.ask('fd00:10:244:63::7')).toBe('pending');
    await vi.waitFor(() => expect(a.lookup.answers).toBe(1));
    expect(a.outcomes).toEqual(['not_found']);
    expect(a.directory.locate('fd00:10:244:63::7', Date.now()).pod).toBeUndefined();
    a.lookup.ask('10.63.0.7');
    await vi.waitFor(() => expect(a.lookup.answers).toBe(2));
    // The pod found carries both addresses: the second is located without a lookup of its own.
    expect(a.directory.locate('fd00:10:244:63::7', Date.now()).pod?.name).toBe('dual');
  });

  it('remembers a miss, and finds a pod that took the address once the miss expired', async () => {
    const a = agent({ missTtlMs: 5000 });
    a.lookup.ask('10.63.0.9');
    await vi.waitFor(() => expect(a.lookup.answers).toBe(1));
    await runningPod('late', OTHER, ['10.63.0.9']);
    const before = proxy.seen('GET', LOOKUPS).length;
    a.advance(5000);
    expect(a.lookup.ask('10.63.0.9')).toBe('settled');
    expect(proxy.seen('GET', LOOKUPS)).toHaveLength(before);
    a.advance(1);
    expect(a.lookup.ask('10.63.0.9')).toBe('pending');
    await vi.waitFor(() => expect(a.lookup.answers).toBe(2));
    expect(a.directory.locate('10.63.0.9', Date.now()).pod?.name).toBe('late');
    expect(a.outcomes).toEqual(['not_found', 'miss', 'found']);
  });

  it('IP reuse: a Succeeded pod and a Running one with its address: the drop time decides', async () => {
    const now = Date.now();
    await runningPod('finished', OTHER, ['10.63.0.11']);
    await setStatus('finished', 'Succeeded', new Date(now - 10 * 60_000));
    await runningPod('reusing', OTHER, ['10.63.0.11']);
    await setStatus('reusing', 'Running', new Date(now - 60_000));
    const a = agent();
    await withClient(a);
    // While the finished pod had the address, the new one was not Running: no pod is named or gets an Event.
    a.pipeline.handle(drop({ src: '10.63.0.1', dst: '10.63.0.11', time: now - 5 * 60_000, srcPort: 1 }), now);
    await releaseUntil(a, () => a.sink.intents.length === 1);
    a.pipeline.handle(drop({ src: '10.63.0.1', dst: '10.63.0.11', time: now, srcPort: 2 }), now);
    await releaseUntil(a, () => a.sink.intents.length === 3);
    expect(a.summary()).toEqual([
      'client send: Packet dropped when sending traffic to 10.63.0.11 on port 12865/TCP',
      'client send: Packet dropped when sending traffic to reusing (10.63.0.11) on port 12865/TCP',
      'reusing receive: Packet dropped when receiving traffic from client (10.63.0.1) on port 12865/TCP',
    ]);
  });

  it('bounds the lookups of a storm of distinct addresses: the burst, then the rate', async () => {
    const a = agent({ burst: 5, perSecond: 10 });
    const before = proxy.seen('GET', LOOKUPS).length;
    const addresses = Array.from({ length: 200 }, (_, i) => `10.64.${i >> 8}.${i & 255}`);
    for (const ip of addresses) a.lookup.ask(ip);
    await vi.waitFor(() => expect(a.lookup.answers).toBe(5));
    expect(proxy.seen('GET', LOOKUPS).length - before).toBe(5);
    // A quiet second refills the bucket up to its burst, not beyond.
    a.advance(1000);
    for (const ip of addresses) a.lookup.ask(ip);
    await vi.waitFor(() => expect(a.lookup.answers).toBe(10));
    expect(proxy.seen('GET', LOOKUPS).length - before).toBe(10);
    a.advance(100);
    for (const ip of addresses) a.lookup.ask(ip);
    await vi.waitFor(() => expect(a.lookup.answers).toBe(11));
    expect(proxy.seen('GET', LOOKUPS).length - before).toBe(11);
    // Each address refused by the rate is counted once, however often it is asked again while it waits.
    expect(a.outcomes.filter((o) => o === 'rate_limited')).toHaveLength(195);
  });

  it('holds the drop while the API server is away, and posts it once the lookup is answered: nothing lost', async () => {
    await runningPod('server-away', OTHER, ['10.63.0.13']);
    proxy.add({ url: /fieldSelector=status\.podIP%3D10\.63\.0\.13/, status: 503, times: 3 });
    const a = agent();
    await withClient(a);
    // The backoff runs on the lookup's clock; the test moves it as time passes.
    const tick = setInterval(() => a.advance(50), 10);
    try {
      const sent = Date.now();
      for (const sport of [1, 2, 3])
        a.pipeline.handle(drop({ src: '10.63.0.1', dst: '10.63.0.13', time: sent, srcPort: sport }), sent);
      await releaseUntil(a, () => a.sink.intents.length === 6);
    } finally {
      clearInterval(tick);
    }
    const answers = proxy.seen('GET', /fieldSelector=status\.podIP%3D10\.63\.0\.13/).map((r) => r.status);
    expect(answers).toEqual([503, 503, 503, 200]);
    expect(a.summary().filter((line) => line.startsWith('server-away receive'))).toHaveLength(3);
    expect(await value(a.metrics.dropsHeld)).toBe(3);
    expect(a.outcomes.filter((o) => o === 'error').length).toBeGreaterThanOrEqual(3);
  });
});
