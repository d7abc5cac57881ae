import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import type { ListWatch, ListWatchSink } from '../../agent/kube/list-watch.ts';
import { PodDirectory } from '../../agent/locator/pod-directory.ts';
import type { PodState } from '../../agent/locator/pod-index.ts';
import { apiPodState, createPodWatch } from '../../agent/locator/pod-watch.ts';
import { Metrics } from '../../agent/metrics.ts';
import type { PodRef } from '../../agent/types.ts';
import { value } from '../pipeline/fixtures.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  deletePod,
  type PodOptions,
  type RunningStatus,
  setPodRunning,
} from '../support/cluster.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** The index as a plain map, so tests can look at the pods of their own namespace only. */
class PodIndex implements ListWatchSink<PodState> {
  readonly byUid = new Map<string, PodRef>();
  replace(states: PodState[]): void {
    this.byUid.clear();
    for (const state of states) this.upsert(state);
  }
  upsert(state: PodState): void {
    this.byUid.set(state.pod.uid, state.pod);
  }
  remove(state: PodState): void {
    this.byUid.delete(state.pod.uid);
  }
  names(namespace: string): string[] {
    return [...this.byUid.values()]
      .filter((pod) => pod.namespace === namespace)
      .map((pod) => pod.name)
      .sort();
  }
  get(namespace: string, name: string): PodRef | undefined {
    return [...this.byUid.values()].find((pod) => pod.namespace === namespace && pod.name === name);
  }
}

async function runningPod(c: Cluster, pod: PodOptions, status: RunningStatus): Promise<void> {
  await createPod(c, pod);
  await setPodRunning(c, pod.namespace, pod.name, status);
}

async function setPhase(c: Cluster, namespace: string, name: string, phase: string): Promise<void> {
  const pod = await c.core.readNamespacedPod({ namespace, name });
  pod.status = { ...pod.status, phase };
  await c.core.replaceNamespacedPodStatus({ namespace, name, body: pod });
}

describe('apiPodState', () => {
  it('keeps only what the pipeline needs, with canonical addresses', () => {
    const pod = {
      metadata: {
        namespace: 'web',
        name: 'web-1',
        uid: 'u1',
        labels: { app: 'shop' },
        annotations: { a: 'b' },
      },
      spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'i' }] },
      status: {
        phase: 'Running',
        podIP: '10.4.1.12',
        podIPs: [{ ip: '10.4.1.12' }, { ip: 'fd00:0010:0244:0000:0000:0000:0000:0005' }],
        hostIP: '10.128.0.2',
      },
    };
    expect(apiPodState(pod, 'app')?.pod).toEqual({
      namespace: 'web',
      name: 'web-1',
      uid: 'u1',
      nodeName: 'node-a',
      hostNetwork: false,
      label: 'shop',
      ips: ['10.4.1.12', 'fd00:10:244::5'],
    });
    expect(apiPodState(pod, '')?.pod.label).toBeNull();
    expect(apiPodState(pod, 'tier')?.pod.label).toBeNull();
  });

  it('gives a hostNetwork pod its node addresses and rejects what is not a pod', () => {
    const hostPod = {
      metadata: { namespace: 'kube-system', name: 'proxy', uid: 'u2' },
      spec: { nodeName: 'node-a', hostNetwork: true },
      status: { hostIP: '10.128.0.2', hostIPs: [{ ip: '10.128.0.2' }, { ip: 'fd00:10:128::2' }] },
    };
    expect(apiPodState(hostPod, '')?.pod.ips).toEqual(['10.128.0.2', 'fd00:10:128::2']);
    expect(apiPodState(null, '')).toBeNull();
    expect(apiPodState({ kind: 'Status', code: 410 }, '')).toBeNull();
    expect(apiPodState({ metadata: { name: 'no-uid' } }, '')).toBeNull();
  });
});

describe('pod watch against a real API server', () => {
  let c: Cluster;
  let namespace: string;
  let index: PodIndex;
  let watch: ListWatch<PodState>;
  const status = (n: number): RunningStatus => ({
    podIPs: [`10.20.${n >> 8}.${n & 255}`],
    hostIP: '192.0.2.10',
  });

  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    namespace = await createNamespace(c);
    const names = Array.from({ length: 120 }, (_, i) => `web-${i}`);
    for (let i = 0; i < names.length; i += 20) {
      await Promise.all(
        names
          .slice(i, i + 20)
          .map((name, j) => runningPod(c, { namespace, name, nodeName: 'node-a' }, status(i + j))),
      );
    }
    await createPod(c, { namespace, name: 'pending', nodeName: 'node-a' });
    index = new PodIndex();
    watch = createPodWatch({
      kubeConfig: c.kc,
      sink: index,
      logger: pino({ level: 'silent' }),
      labelKey: 'app',
      pageSize: 50,
    });
    watch.start();
    await watch.waitForSync(AbortSignal.timeout(20_000));
  });

  afterAll(() => watch?.stop());

  it('indexes every Running pod across pages, and no pending one', () => {
    const names = index.names(namespace);
    expect(names).toHaveLength(120);
    expect(names).not.toContain('pending');
    expect(index.get(namespace, 'web-7')).toMatchObject({ nodeName: 'node-a', ips: ['10.20.0.7'] });
  });

  it('adds a pod when it becomes Running, with its label value and canonical dual-stack IPs', async () => {
    await createPod(c, { namespace, name: 'dual', nodeName: 'node-b', labels: { app: 'shop', tier: 'x' } });
    await setPodRunning(c, namespace, 'dual', {
      podIPs: ['10.30.0.5', 'fd00:10:244::5'],
      hostIP: '192.0.2.11',
    });
    await setPodRunning(c, namespace, 'pending', { podIPs: ['10.30.0.6'], hostIP: '192.0.2.11' });
    await vi.waitFor(() => expect(index.get(namespace, 'dual')).toBeDefined(), { timeout: 10_000 });
    const dual = index.get(namespace, 'dual');
    expect(dual).toEqual({
      namespace,
      name: 'dual',
      uid: expect.any(String),
      nodeName: 'node-b',
      hostNetwork: false,
      label: 'shop',
      ips: ['10.30.0.5', 'fd00:10:244::5'],
    });
    await vi.waitFor(() => expect(index.get(namespace, 'pending')?.ips).toEqual(['10.30.0.6']));
  });

  it('drops a pod when it leaves Running (Succeeded, Failed) and when it is deleted', async () => {
    await setPhase(c, namespace, 'web-1', 'Succeeded');
    await setPhase(c, namespace, 'web-2', 'Failed');
    await deletePod(c, namespace, 'web-3');
    await vi.waitFor(() => expect(index.names(namespace)).not.toEqual(expect.arrayContaining(['web-1'])), {
      timeout: 10_000,
    });
    await vi.waitFor(() => {
      const names = index.names(namespace);
      expect(names).not.toContain('web-2');
      expect(names).not.toContain('web-3');
    });
    expect(index.names(namespace)).toContain('web-4');
  });

  it('indexes a hostNetwork pod under its node addresses', async () => {
    await runningPod(
      c,
      { namespace, name: 'host', nodeName: 'node-c', hostNetwork: true },
      { podIPs: ['192.0.2.12'], hostIP: '192.0.2.12' },
    );
    await vi.waitFor(
      () => expect(index.get(namespace, 'host')).toMatchObject({ hostNetwork: true, ips: ['192.0.2.12'] }),
      {
        timeout: 10_000,
      },
    );
  });

  it('follows relabelling and IP changes of a Running pod', async () => {
    const pod = await c.core.readNamespacedPod({ namespace, name: 'web-10' });
    pod.metadata = { ...pod.metadata, labels: { app: 'renamed' } };
    await c.core.replaceNamespacedPod({ namespace, name: 'web-10', body: pod });
    await vi.waitFor(() => expect(index.get(namespace, 'web-10')?.label).toBe('renamed'), {
      timeout: 10_000,
    });
  });
});

/**
 * Two Running pods with one IP, as the API server shows them while a finished pod's status is stale and its
 * IP already reused: the real watch feeds the agent's own index, which names the pod that started last.
 */
describe('pod watch and index with two Running pods on one IP', () => {
  const IP = '10.251.7.9';
  const oldStart = new Date('2024-04-05T20:00:00Z');
  const newStart = new Date('2024-04-05T20:30:00Z');
  let c: Cluster;
  let namespace: string;
  let metrics: Metrics;
  let directory: PodDirectory;
  let watch: ListWatch<PodState>;

  /** What a kubelet reports for a started pod, with the start time given rather than now. */
  async function runningSince(name: string, startTime: Date): Promise<void> {
    await createPod(c, { namespace, name, nodeName: 'node-a' });
    await setPodRunning(c, namespace, name, { podIPs: [IP], hostIP: '192.0.2.10' });
    const pod = await c.core.readNamespacedPod({ namespace, name });
    pod.status = { ...pod.status, startTime };
    await c.core.replaceNamespacedPodStatus({ namespace, name, body: pod });
  }

  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    namespace = await createNamespace(c);
    // The newer pod first, so that the index hears of the stale one last.
    await runningSince('reused', newStart);
    await runningSince('stale', oldStart);
    metrics = new Metrics();
    directory = new PodDirectory(metrics.podIpConflicts);
    watch = createPodWatch({
      kubeConfig: c.kc,
      sink: directory.pods,
      logger: pino({ level: 'silent' }),
      labelKey: '',
    });
    watch.start();
    await watch.waitForSync(AbortSignal.timeout(20_000));
  });

  afterAll(() => watch?.stop());

  it('names the pod that started last, and counts the conflict', async () => {
    const located = directory.locate(IP, Date.parse('2024-04-05T21:00:00Z'));
    expect(located.pod).toMatchObject({ namespace, name: 'reused' });
    expect(await value(metrics.podIpConflicts)).toBe(1);
  });

  it('names the pod that was Running at the drop time when the other started after it', () => {
    expect(directory.locate(IP, Date.parse('2024-04-05T20:10:00Z')).pod).toMatchObject({ name: 'stale' });
  });

  it('names the remaining pod, without a conflict, once the stale one leaves Running', async () => {
    await setPhase(c, namespace, 'stale', 'Succeeded');
    const at = Date.parse('2024-04-05T20:10:00Z');
    await vi.waitFor(() => expect(directory.locate(IP, at).pod).toMatchObject({ name: 'reused' }), {
      timeout: 10_000,
    });
    const conflicts = await value(metrics.podIpConflicts);
    directory.locate(IP, at);
    expect(await value(metrics.podIpConflicts)).toBe(conflicts);
  });
});

describe('PodState memory', () => {
  it('stays far below 1 KiB per pod with 10,000 pods indexed', async () => {
    // Each pod is parsed from its own JSON text, as the client does, so no string is shared by accident.
    const script = `
      import { apiPodState } from './agent/locator/pod-watch.ts';
      const count = 10_000;
      const text = (i) => JSON.stringify({
        metadata: {
          name: 'checkout-' + i.toString(36) + '-7d9f8c6b5-' + (i * 7919).toString(36).padStart(5, 'x'),
          namespace: 'team-' + (i % 40), uid: crypto.randomUUID(), resourceVersion: String(100000 + i),
          labels: { app: 'checkout-' + (i % 300), 'pod-template-hash': '7d9f8c6b5' },
          annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'checkout-7d9f8c6b5', uid: crypto.randomUUID() }],
        },
        spec: { nodeName: 'gke-cluster-default-pool-d4371b02-' + (i % 200), containers: [{ name: 'main', image: 'registry.example/checkout:1.2.3' }] },
        status: {
          phase: 'Running', hostIP: '10.128.0.' + (i % 200), hostIPs: [{ ip: '10.128.0.' + (i % 200) }],
          podIP: '10.4.' + (i >> 8) + '.' + (i & 255),
          podIPs: [{ ip: '10.4.' + (i >> 8) + '.' + (i & 255) }, { ip: 'fd00:10:244:' + (i >> 8).toString(16) + '::' + (i & 255).toString(16) }],
        },
      });
      const texts = Array.from({ length: count }, (_, i) => text(i));
      globalThis.gc(); globalThis.gc();
      const before = process.memoryUsage().heapUsed;
      const refs = texts.map((t) => apiPodState(JSON.parse(t), 'app'));
      globalThis.gc(); globalThis.gc();
      const after = process.memoryUsage().heapUsed;
      if (refs.some((r) => r === null || r.pod.ips.length !== 2)) throw new Error('conversion failed');
      console.log(JSON.stringify({ bytesPerPod: (after - before) / count, kibPer1000: (after - before) / 1024 / (count / 1000) }));
    `;
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--expose-gc', '--input-type=module', '-e', script],
        { cwd: repoRoot, timeout: 60_000 },
        (error, out, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(out)),
      ),
    );
    const { bytesPerPod, kibPer1000 } = JSON.parse(stdout) as { bytesPerPod: number; kibPer1000: number };
    console.info(
      `PodState heap: ${bytesPerPod.toFixed(0)} B per pod, ${kibPer1000.toFixed(0)} KiB per 1,000 pods`,
    );
    expect(bytesPerPod).toBeGreaterThan(100);
    expect(bytesPerPod).toBeLessThan(1024);
  });
});
