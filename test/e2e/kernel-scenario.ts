// What the real-kernel end-to-end tests share: the two pods behind a KernelNet's namespaces in the real API
// server, and the Events they got, read as `kubectl get events` shows them.

import { type Cluster, createNamespace, createPod, kubectl, setPodRunning } from '../support/cluster.ts';
import type { KernelNet } from '../support/kernel-net.ts';
import { waitFor } from './agent-process.ts';

export interface KernelEvent {
  involvedObject: { name: string };
  message: string;
  count: number;
}

/** A namespace of its own with Running pods `client` and `server` on `node`, each with both of its side's addresses. */
export async function kernelPods(cluster: Cluster, net: KernelNet, node: string): Promise<string> {
  const namespace = await createNamespace(cluster);
  for (const [name, side] of [
    ['client', net.client],
    ['server', net.server],
  ] as const) {
    await createPod(cluster, { namespace, name, nodeName: node });
    await setPodRunning(cluster, namespace, name, { podIPs: [side.ipv4, side.ipv6], hostIP: '10.128.0.2' });
  }
  return namespace;
}

export async function namespaceEvents(cluster: Cluster, namespace: string): Promise<KernelEvent[]> {
  const { items } = JSON.parse(await kubectl(cluster, ['get', 'events', '-n', namespace, '-o', 'json'])) as {
    items: KernelEvent[];
  };
  return items;
}

/** `pod: message` of each Event, sorted: what the tests compare with the expected set. */
export const eventLines = (events: readonly KernelEvent[]): string[] =>
  events.map((e) => `${e.involvedObject.name}: ${e.message}`).sort();

/** The namespace's Events once there are `count` of them (or more, which the caller's comparison shows). */
export function awaitEvents(cluster: Cluster, namespace: string, count: number): Promise<KernelEvent[]> {
  return waitFor(
    async () => {
      const items = await namespaceEvents(cluster, namespace);
      return items.length >= count ? items : null;
    },
    15_000,
    `${count} Events`,
  );
}
