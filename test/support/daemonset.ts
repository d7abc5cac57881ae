// What the shipped DaemonSet gives the agent, read from manifests/base/daemonset.yaml, so that tests and
// benchmarks measure the agent as it is deployed.

import { readFile } from 'node:fs/promises';
import { loadAllYaml, type V1DaemonSet } from '@kubernetes/client-node';

const MANIFEST = new URL('../../manifests/base/daemonset.yaml', import.meta.url);

/** A Kubernetes memory quantity ("256Mi", "1G", "512000") in bytes. */
function quantityBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMGT]i?)?$/.exec(quantity);
  if (!match) throw new Error(`unsupported quantity ${quantity}`);
  const power = { K: 1, M: 2, G: 3, T: 4 }[match[2]?.[0] as 'K'] ?? 0;
  return Number(match[1]) * (match[2]?.endsWith('i') ? 1024 : 1000) ** power;
}

/**
 * What the shipped DaemonSet gives the agent's memory: the container's limit, and the Node options it sets
 * (a heap cap, say), which the agent here runs with too.
 */
export async function daemonSetMemory(): Promise<{
  limit: string;
  bytes: number;
  nodeOptions: Record<string, string>;
}> {
  const docs = loadAllYaml(await readFile(MANIFEST, 'utf8')) as V1DaemonSet[];
  const container = docs.find((doc) => doc.kind === 'DaemonSet')?.spec?.template.spec?.containers[0];
  const limit = String(container?.resources?.limits?.memory ?? '');
  const options = container?.env?.find((env) => env.name === 'NODE_OPTIONS')?.value;
  return { limit, bytes: quantityBytes(limit), nodeOptions: options ? { NODE_OPTIONS: options } : {} };
}
