import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import type { ListWatch } from '../../agent/kube/list-watch.ts';
import { createPodWatch, type PodIndexSink, podRefOf } from '../../agent/locator/pod-watch.ts';
import type { PodRef } from '../../agent/types.ts';
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
class PodIndex implements PodIndexSink {
  readonly byUid = new Map<string, PodRef>();
  replacePods(pods: PodRef[]): void {
    this.byUid.clear();
    for (const pod of pods) this.byUid.set(pod.uid, pod);
  }
  upsertPod(pod: PodRef): void {
    this.byUid.set(pod.uid, pod);
  }
  removePod(uid: string): void {
    this.byUid.delete(uid);
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

describe('podRefOf', () => {
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
    expect(podRefOf(pod, 'app')).toEqual({
      namespace: 'web',
      name: 'web-1',
      uid: 'u1',
      nodeName: 'node-a',
      hostNetwork: false,
      label: 'shop',
      ips: ['10.4.1.12', 'fd00:10:244::5'],
    });
    expect(podRefOf(pod, '')?.label).toBeNull();
    expect(podRefOf(pod, 'tier')?.label).toBeNull();
  });

  it('gives a hostNetwork pod its node addresses and rejects what is not a pod', () => {
    const hostPod = {
      metadata: { namespace: 'kube-system', name: 'proxy', uid: 'u2' },
      spec: { nodeName: 'node-a', hostNetwork: true },
      status: { hostIP: '10.128.0.2', hostIPs: [{ ip: '10.128.0.2' }, { ip: 'fd00:10:128::2' }] },
    };
    expect(podRefOf(hostPod, '')?.ips).toEqual(['10.128.0.2', 'fd00:10:128::2']);
    expect(podRefOf(null, '')).toBeNull();
    expect(podRefOf({ kind: 'Status', code: 410 }, '')).toBeNull();
    expect(podRefOf({ metadata: { name: 'no-uid' } }, '')).toBeNull();
  });
});

describe('pod watch against a real API server', () => {
  let c: Cluster;
  let namespace: string;
  let index: PodIndex;
  let watch: ListWatch<PodRef>;
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

describe('PodRef memory', () => {
  it('stays far below 1 KiB per pod with 10,000 pods indexed', async () => {
    // Each pod is parsed from its own JSON text, as the client does, so no string is shared by accident.
    const script = `
      import { podRefOf } from './agent/locator/pod-watch.ts';
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
      const refs = texts.map((t) => podRefOf(JSON.parse(t), 'app'));
      globalThis.gc(); globalThis.gc();
      const after = process.memoryUsage().heapUsed;
      if (refs.some((r) => r === null || r.ips.length !== 2)) throw new Error('conversion failed');
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
      `PodRef heap: ${bytesPerPod.toFixed(0)} B per pod, ${kibPer1000.toFixed(0)} KiB per 1,000 pods`,
    );
    expect(bytesPerPod).toBeGreaterThan(100);
    expect(bytesPerPod).toBeLessThan(1024);
  });
});
