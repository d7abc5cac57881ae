/**
 * doctor's look at the pod index: one paginated list of Running pods (and of nodes) through the agent's
 * own conversion (apiPodState, apiNodeAddresses) into the agent's own index (PodDirectory), then the frequent
 * drop addresses looked up in it exactly as the pipeline does.
 */

import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { classifyApiError } from '../../kube/errors.ts';
import { listAll } from '../../kube/pages.ts';
import { apiNodeAddresses } from '../../locator/node-watch.ts';
import { PodDirectory } from '../../locator/pod-directory.ts';
import { apiPodState, RUNNING_PODS } from '../../locator/pod-watch.ts';
import { describeError, timeoutOptions } from './requests.ts';
import type { AddressCount, PodsReport, ResolvedAddress } from './types.ts';

function resolve(directory: PodDirectory, address: AddressCount, now: number): ResolvedAddress {
  const { pod, node } = directory.locate(address.ip, now);
  return {
    ...address,
    pod: pod === undefined ? null : `${pod.namespace}/${pod.name}`,
    hostNetwork: pod?.hostNetwork ?? false,
    node: pod === undefined ? (node ?? null) : null,
  };
}

/** Never throws: a failed list is in the report. */
export async function checkPods(
  kubeConfig: KubeConfig,
  labelKey: string,
  addresses: readonly AddressCount[],
): Promise<PodsReport> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const directory = new PodDirectory();
  const report: PodsReport = {
    running: null,
    error: null,
    errorStatus: null,
    nodes: null,
    nodesError: null,
    addresses: [],
  };
  try {
    const pods = await listAll(
      (request, options) => core.listPodForAllNamespaces(request, options),
      (object) => apiPodState(object, labelKey),
      { options: timeoutOptions(), fieldSelector: RUNNING_PODS },
    );
    directory.pods.replace(pods.items);
    report.running = directory.size;
  } catch (err) {
    report.error = describeError(err);
    report.errorStatus = classifyApiError(err).status;
    return report;
  }
  try {
    const nodes = await listAll((request, options) => core.listNode(request, options), apiNodeAddresses, {
      options: timeoutOptions(),
    });
    directory.nodes.replace(nodes.items);
    report.nodes = nodes.items.length;
  } catch (err) {
    report.nodesError = describeError(err);
  }
  const now = Date.now();
  report.addresses = addresses.map((address) => resolve(directory, address, now));
  return report;
}
