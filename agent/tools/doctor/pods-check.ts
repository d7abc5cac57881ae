/**
 * doctor's look at the pod index: one paginated list of the Running pods the agent's pod watch would hold
 * (every pod, or with POD_WATCH_SCOPE=node those of NODE_NAME) and of nodes, through the agent's own
 * conversion (apiPodState, apiNodeAddresses) into the agent's own index (PodDirectory); then the frequent drop
 * addresses located in it as the pipeline does. With POD_WATCH_SCOPE=node, an address neither watch has is
 * looked up by status.podIP as PodLookup would, its pods going where the agent puts them (PodDirectory.remote).
 */

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../../config.ts';
import { classifyApiError } from '../../kube/errors.ts';
import { itemsAsSent, type ListCall, listAll } from '../../kube/pages.ts';
import { apiNodeAddresses } from '../../locator/node-watch.ts';
import { PodDirectory } from '../../locator/pod-directory.ts';
import type { PodState } from '../../locator/pod-index.ts';
import { podIpSelector } from '../../locator/pod-lookup.ts';
import { apiPodState, podLister, runningPodsSelector } from '../../locator/pod-watch.ts';
import { describeError, timeoutOptions } from './requests.ts';
import type { AddressCount, PodsReport, ResolvedAddress, WatchReport } from './types.ts';

type PodSettings = Pick<Config, 'podIdentifierLabel'> & { watch: WatchReport };

function resolved(
  directory: PodDirectory,
  address: AddressCount,
  now: number,
  via: ResolvedAddress['via'],
  lookupError: string | null = null,
): ResolvedAddress {
  const { pod, node } = directory.locate(address.ip, now);
  return {
    ...address,
    pod: pod === undefined ? null : `${pod.namespace}/${pod.name}`,
    hostNetwork: pod?.hostNetwork ?? false,
    node: pod === undefined ? (node ?? null) : null,
    via,
    lookupError,
  };
}

/** Only Running pods on the pod network get Events: hostNetwork pods are named by their node. */
function eventPods(pods: readonly PodState[]): number {
  return pods.filter(({ running, pod }) => running && !pod.hostNetwork).length;
}

/** What PodLookup asks when a drop names an address no watched pod or node has; null when it answered. */
async function lookUp(
  list: ListCall,
  directory: PodDirectory,
  labelKey: string,
  ip: string,
): Promise<string | null> {
  try {
    const { items } = await listAll(list, (object) => apiPodState(object, labelKey), {
      options: timeoutOptions(),
      fieldSelector: podIpSelector(ip),
    });
    for (const pod of items) directory.remote.upsert(pod);
    return null;
  } catch (err) {
    return describeError(err);
  }
}

/** Never throws: a failed list is in the report. */
export async function checkPods(
  kubeConfig: KubeConfig,
  { podIdentifierLabel: labelKey, watch }: PodSettings,
  addresses: readonly AddressCount[],
): Promise<PodsReport> {
  const list = podLister(kubeConfig);
  const directory = new PodDirectory();
  const report: PodsReport = {
    running: null,
    local: null,
    error: null,
    errorStatus: null,
    nodes: null,
    nodesError: null,
    addresses: [],
  };
  const nodeScoped = watch.scope === 'node';
  try {
    const pods = await listAll(list, (object) => apiPodState(object, labelKey), {
      options: timeoutOptions(),
      // The pod watch's own selector (createPodWatch), so that the count is what the agent holds.
      fieldSelector: runningPodsSelector(nodeScoped ? (watch.nodeName ?? undefined) : undefined),
    });
    directory.pods.replace(pods.items);
    report.running = directory.size;
    if (nodeScoped) report.local = eventPods(pods.items);
  } catch (err) {
    report.error = describeError(err);
    report.errorStatus = classifyApiError(err).status;
    return report;
  }
  try {
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const nodes = await listAll(
      itemsAsSent((request, options) => core.listNode(request, options)),
      apiNodeAddresses,
      {
        options: timeoutOptions(),
      },
    );
    directory.nodes.replace(nodes.items);
    report.nodes = nodes.items.length;
  } catch (err) {
    report.nodesError = describeError(err);
  }
  const now = Date.now();
  const watched = addresses.map((address) => resolved(directory, address, now, 'watch'));
  const unknown = (address: ResolvedAddress) => address.pod === null && address.node === null;
  if (!nodeScoped || !watched.some(unknown)) {
    report.addresses = watched;
    return report;
  }
  // All at once, as the agent's lookups of one batch of drops run (within its burst of LOOKUP_LIMITS).
  const errors = await Promise.all(
    watched.map((address) =>
      unknown(address) ? lookUp(list, directory, labelKey, address.ip) : Promise.resolve(null),
    ),
  );
  report.addresses = watched.map((address, i) =>
    unknown(address) ? resolved(directory, address, now, 'lookup', errors[i] ?? null) : address,
  );
  return report;
}
