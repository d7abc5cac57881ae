import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { backoffDelay } from '../../agent/backoff.ts';
import { classifyApiError } from '../../agent/kube/errors.ts';
import {
  cappedRetryAfterMs,
  ListWatch,
  type ListWatchCounters,
  type ListWatchOptions,
} from '../../agent/kube/list-watch.ts';
import { isRecord } from '../../agent/kube/objects.ts';
import type { ListRequest } from '../../agent/kube/pages.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  deletePod,
  type PrivateControlPlane,
  privateControlPlane,
} from '../support/cluster.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

describe('the list-watch backoff', () => {
  const backoff = { initialMs: 500, maxMs: 30_000, jitter: 0.5 };

  it('doubles from the initial delay up to the cap, keeping at least half of each step', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, backoff, () => 0))).toEqual([250, 500, 1000, 2000]);
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, backoff, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(40, backoff, () => 1)).toBe(30_000);
    expect(backoffDelay(40, backoff, () => 0)).toBe(15_000);
  });
});

describe('cappedRetryAfterMs', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  const retryAfter = (error: unknown) => cappedRetryAfterMs(classifyApiError(error, now));

  it('reads seconds or an HTTP date from an API error, capped at 5 min, and nothing from errors without headers', () => {
    expect(retryAfter({ code: 429, headers: { 'retry-after': '3' } })).toBe(3000);
    expect(retryAfter({ code: 503, headers: { 'retry-after': 'Wed, 01 Jan 2025 00:00:10 GMT' } })).toBe(
      10_000,
    );
    expect(retryAfter({ code: 429, headers: { 'retry-after': '100000' } })).toBe(300_000);
    expect(retryAfter({ code: 429, headers: { 'retry-after': 'soon' } })).toBeNull();
    expect(retryAfter({ statusCode: 429 })).toBeNull();
    expect(retryAfter(new Error('ECONNREFUSED'))).toBeNull();
  });
});

interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger whose records the test can read. */
function capturingLogger(): { logger: pino.Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      records.push(JSON.parse(chunk.toString()) as LogRecord);
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), records };
}

const INFO = 30;
const WARN = 40;

/** The generic loop over the pods of one namespace, keyed by name, with every list request recorded. */
function namespacePods(
  c: Cluster,
  namespace: string,
  overrides: Partial<ListWatchOptions<string>> = {},
): {
  watch: ListWatch<string>;
  names: Set<string>;
  requests: ListRequest[];
  counts: Record<keyof ListWatchCounters, number>;
} {
  const names = new Set<string>();
  const requests: ListRequest[] = [];
  const counts = { lists: 0, relists: 0, watches: 0, reconnects: 0, events: 0 };
  const watch = new ListWatch<string>({
    resource: 'pods',
    kubeConfig: c.kc,
    path: `/api/v1/namespaces/${namespace}/pods`,
    list: (request, options) => {
      requests.push(request);
      return c.core.listNamespacedPod({ namespace, ...request }, options);
    },
    convert: (object) => {
      const name = isRecord(object) && isRecord(object.metadata) ? object.metadata.name : undefined;
      return typeof name === 'string' ? name : null;
    },
    sink: {
      replace: (items) => {
        names.clear();
        for (const name of items) names.add(name);
      },
      upsert: (name) => names.add(name),
      remove: (name) => names.delete(name),
    },
    logger: pino({ level: 'silent' }),
    // The counters as the agent's metrics see them.
    onCount: (counter) => counts[counter]++,
    ...overrides,
  });
  return { watch, names, requests, counts };
}

async function createPods(c: Cluster, namespace: string, names: string[]): Promise<void> {
  for (let i = 0; i < names.length; i += 20) {
    await Promise.all(names.slice(i, i + 20).map((name) => createPod(c, { namespace, name })));
  }
}

const podNames = (count: number, prefix = 'p'): string[] =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);

describe('ListWatch against a real API server', () => {
  let c: Cluster;
  const running: ListWatch<unknown>[] = [];

  beforeAll(() => {
    c = connect(inject('kubeconfig'));
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((watch) => watch.stop()));
  });

  function started<T>(watch: ListWatch<T>): ListWatch<T> {
    running.push(watch as ListWatch<unknown>);
    watch.start();
    return watch;
  }

  it('follows continue tokens through every page before the first sync', async () => {
    const namespace = await createNamespace(c);
    await createPods(c, namespace, podNames(120));
    const { watch, names, requests } = namespacePods(c, namespace, { pageSize: 50 });
    started(watch);
    await watch.waitForSync(AbortSignal.timeout(10_000));

    expect(names.size).toBe(120);
    expect(requests.map((r) => r.limit)).toEqual([50, 50, 50]);
    expect(requests[0]?._continue).toBeUndefined();
    expect(requests[1]?._continue).toEqual(expect.any(String));
    expect(requests[2]?._continue).toEqual(expect.any(String));
    expect(watch.synced()).toBe(true);
  });

  it('resumes a watch the server ended from its resourceVersion, without listing again', async () => {
    const namespace = await createNamespace(c);
    await createPods(c, namespace, ['before']);
    const { watch, names, counts } = namespacePods(c, namespace, { watchTimeoutSeconds: { min: 1, max: 1 } });
    started(watch);
    await watch.waitForSync();
    await vi.waitFor(() => expect(counts.watches).toBeGreaterThanOrEqual(3), { timeout: 15_000 });

    await createPods(c, namespace, ['after']);
    await deletePod(c, namespace, 'before');
    await vi.waitFor(() => expect([...names]).toEqual(['after']), { timeout: 10_000 });
    expect(counts).toMatchObject({ lists: 1, relists: 0, reconnects: 0 });
  });

  it('relists when the index throws, then carries on watching', async () => {
    const namespace = await createNamespace(c);
    const { watch, names } = namespacePods(c, namespace);
    let throwOnce = true;
    const sink = {
      replace: (items: string[]) => {
        names.clear();
        for (const name of items) names.add(name);
      },
      upsert: (name: string) => {
        if (throwOnce) {
          throwOnce = false;
          throw new Error('index bug');
        }
        names.add(name);
      },
      remove: (name: string) => names.delete(name),
    };
    const { watch: flaky, counts: flakyCounts } = namespacePods(c, namespace, {
      sink,
      backoff: { initialMs: 10, maxMs: 50 },
    });
    started(flaky);
    started(watch);
    await flaky.waitForSync();
    await watch.waitForSync();

    await createPods(c, namespace, ['lost-then-relisted']);
    await vi.waitFor(() => expect(flakyCounts.relists).toBe(1), { timeout: 10_000 });
    expect(names.has('lost-then-relisted')).toBe(true);
    await createPods(c, namespace, ['watched']);
    await vi.waitFor(() => expect(names.has('watched')).toBe(true), { timeout: 10_000 });
  });

  it('retries an unreachable server with backoff, warning once, and stops cleanly', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(c.kc.exportConfig());
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster');
    // Port 1 on loopback: nothing listens, so connections are refused at once.
    kc.clusters = kc.clusters.map((entry) =>
      entry.name === cluster.name ? { ...entry, server: 'https://127.0.0.1:1' } : entry,
    );
    const { logger, records } = capturingLogger();
    const unreachable = { kubeconfig: '', kc, core: kc.makeApiClient(CoreV1Api) };
    const { watch, counts } = namespacePods(unreachable, 'default', {
      logger,
      backoff: { initialMs: 10, maxMs: 40 },
    });
    started(watch);
    await vi.waitFor(() => expect(counts.reconnects).toBeGreaterThanOrEqual(5), { timeout: 10_000 });
    expect(watch.synced()).toBe(false);
    expect(watch.current()).toBe(false);
    await expect(watch.waitForSync(AbortSignal.timeout(100))).rejects.toThrow(/not synced/);

    const warnings = records.filter((r) => r.level === WARN);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/pods list failed, retrying with backoff/);
    const waiting = watch.waitForSync();
    await watch.stop();
    await expect(waiting).rejects.toThrow(/not synced/);
  });
});

/** Runs a script in a fresh Node process and resolves with its stdout once the process has exited. */
function runNode(script: string, env: Record<string, string>): Promise<{ stdout: string; exitMs: number }> {
  return new Promise((resolve, reject) => {
    let stoppedAt = 0;
    const child = execFile(
      process.execPath,
      ['--input-type=module', '-e', script],
      { cwd: repoRoot, env: { ...process.env, ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message}\n${stderr}`));
        else resolve({ stdout, exitMs: performance.now() - stoppedAt });
      },
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('stopped')) stoppedAt = performance.now();
    });
  });
}

describe('ListWatch.stop', () => {
  it('leaves nothing behind: the process exits on its own after a watch, a list or a backoff wait', async () => {
    const script = `
      import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
      import { pino } from 'pino';
      import { createPodWatch } from './agent/locator/pod-watch.ts';
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(process.env.KUBECONFIG_PATH);
      const sink = { replace() {}, upsert() {}, remove() {} };
      const logger = pino({ level: 'silent' });
      let watches = 0;
      const onCount = (counter) => { if (counter === 'watches') watches++; };
      const watching = createPodWatch({ kubeConfig, sink, logger, labelKey: '', onCount });
      watching.start();
      await watching.waitForSync();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const listing = createPodWatch({ kubeConfig, sink, logger, labelKey: '' });
      listing.start();
      const unreachable = new KubeConfig();
      unreachable.loadFromString(kubeConfig.exportConfig());
      unreachable.clusters = unreachable.clusters.map((c) => ({ ...c, server: 'https://127.0.0.1:1' }));
      const waiting = createPodWatch({ kubeConfig: unreachable, sink, logger, labelKey: '' });
      waiting.start();
      await new Promise((resolve) => setTimeout(resolve, 200));
      await Promise.all([watching.stop(), listing.stop(), waiting.stop()]);
      console.log('stopped', JSON.stringify({ watches }));
    `;
    const { stdout, exitMs } = await runNode(script, { KUBECONFIG_PATH: inject('kubeconfig') });
    expect(stdout).toMatch(/stopped .*"watches":1/);
    expect(exitMs).toBeLessThan(2000);
  });
});

describe('ListWatch through API server restarts and outages', () => {
  let plane: PrivateControlPlane;
  let c: Cluster;
  const running: ListWatch<unknown>[] = [];

  beforeAll(async () => {
    plane = await privateControlPlane();
    c = plane.cluster;
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((watch) => watch.stop()));
  });

  afterAll(() => plane.down());

  it('relists after 410 Gone when the restarted server cannot resume from the old resourceVersion', async () => {
    const namespace = await createNamespace(c);
    await createPods(c, namespace, ['a']);
    const { logger, records } = capturingLogger();
    const { watch, names, counts } = namespacePods(c, namespace, {
      logger,
      // Long enough that no bookmark moves the resourceVersion forward before the restart.
      watchTimeoutSeconds: { min: 300, max: 300 },
      backoff: { initialMs: 200, maxMs: 1000 },
    });
    running.push(watch as ListWatch<unknown>);
    watch.start();
    await watch.waitForSync();
    // A write the pod watch never sees moves etcd's revision past its resourceVersion; the restarted
    // server's watch cache starts at the newer revision and answers the resumed watch with 410 Gone.
    await c.core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'bump' } } });
    await plane.testenv('restart-apiserver');

    await vi.waitFor(() => expect(counts.relists).toBe(1), { timeout: 30_000 });
    expect(records).toContainEqual(expect.objectContaining({ level: INFO, reason: '410 Gone' }));
    await createPods(c, namespace, ['b']);
    await vi.waitFor(() => expect([...names].sort()).toEqual(['a', 'b']), { timeout: 10_000 });
  });

  it('converges on changes made while it was cut off, warning once for the whole outage', async () => {
    const namespace = await createNamespace(c);
    await createPods(c, namespace, ['kept', 'removed']);
    const { logger, records } = capturingLogger();
    const { watch, names, counts } = namespacePods(c, namespace, {
      logger,
      backoff: { initialMs: 1000, maxMs: 3000 },
    });
    running.push(watch as ListWatch<unknown>);
    watch.start();
    await watch.waitForSync();
    expect([...names].sort()).toEqual(['kept', 'removed']);
    await vi.waitFor(() => expect(watch.current()).toBe(true), { timeout: 5000 });

    await plane.testenv('stop-apiserver');
    await vi.waitFor(() => expect(counts.reconnects).toBeGreaterThanOrEqual(3), { timeout: 30_000 });
    expect(watch.current()).toBe(false);
    await plane.testenv('start-apiserver');
    // The loop is still backing off (1-3 s) while these land.
    await createPods(c, namespace, ['added']);
    await deletePod(c, namespace, 'removed');

    await vi.waitFor(() => expect([...names].sort()).toEqual(['added', 'kept']), { timeout: 30_000 });
    await vi.waitFor(() => expect(watch.current()).toBe(true), { timeout: 5000 });
    expect(records.filter((r) => r.level === WARN)).toHaveLength(1);
    expect(records).toContainEqual(
      expect.objectContaining({ level: INFO, msg: 'pods API server reachable again' }),
    );
  }, 120_000);
});
