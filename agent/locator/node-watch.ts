import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ListWatch, type ListWatchSink, type ListWatchTuning } from '../kube/list-watch.ts';
import { isRecord } from '../kube/objects.ts';
import { itemsAsSent } from '../kube/pages.ts';
import type { Logger } from '../log.ts';
import { canonicalIp } from '../net.ts';
import type { NodeAddresses } from './pod-index.ts';

/** Hostname and similar entries are names, not addresses a kernel log line could show. */
const ADDRESS_TYPES = new Set(['InternalIP', 'ExternalIP']);

/** A node's name and canonical IP addresses, or null when the object is not a usable node. */
export function apiNodeAddresses(object: unknown): NodeAddresses | null {
  const metadata = isRecord(object) ? object.metadata : undefined;
  const name = isRecord(metadata) ? metadata.name : undefined;
  if (typeof name !== 'string' || name === '') return null;
  const status = isRecord(object) ? object.status : undefined;
  const entries = isRecord(status) && Array.isArray(status.addresses) ? status.addresses : [];
  const addresses = entries
    .filter(isRecord)
    .filter((entry) => typeof entry.type === 'string' && ADDRESS_TYPES.has(entry.type))
    .map((entry) => (typeof entry.address === 'string' ? canonicalIp(entry.address) : null))
    .filter((address) => address !== null);
  return { name, addresses: [...new Set(addresses)] };
}

export interface NodeWatchOptions extends ListWatchTuning {
  kubeConfig: KubeConfig;
  /** The pod index's nodes (PodIndex.nodes). */
  sink: ListWatchSink<NodeAddresses>;
  logger: Logger;
}

/** Every node's InternalIP/ExternalIP addresses, so drops from or to a node can name it. Call start(). */
export function createNodeWatch(options: NodeWatchOptions): ListWatch<NodeAddresses> {
  const { kubeConfig, ...rest } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return new ListWatch<NodeAddresses>({
    ...rest,
    resource: 'nodes',
    kubeConfig,
    path: '/api/v1/nodes',
    list: itemsAsSent((request, requestOptions) => core.listNode(request, requestOptions)),
    convert: apiNodeAddresses,
  });
}
