import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { ListWatch, type ListWatchSink, type ListWatchTuning } from '../kube/list-watch.ts';
import { isRecord } from '../kube/objects.ts';
import { itemsAsSent, type ListCall } from '../kube/pages.ts';
import type { Logger } from '../log.ts';
import type { PodState } from './pod-index.ts';
import { podState } from './pod-ref.ts';

/**
 * Only Running pods can send or receive packets. With this selector the API server also reports a pod that
 * leaves Running (Succeeded, Failed, Unknown) as DELETED, so the index never has to look at phases.
 */
export const RUNNING_PODS = 'status.phase=Running';

/** The pods a watch holds: Running pods of every node, or of one (the node-scoped watch). */
export function runningPodsSelector(nodeName?: string): string {
  return nodeName === undefined ? RUNNING_PODS : `${RUNNING_PODS},spec.nodeName=${nodeName}`;
}

const NO_ADDRESSES: readonly string[] = [];

/**
 * The PodState of a pod from the API, or null when it is not a usable pod (no name or no uid). The node
 * watch names node addresses, so a pod network pod's hostIPs are not kept: they would cost memory per pod
 * for nothing; a hostNetwork pod's are its own addresses.
 */
export function apiPodState(object: unknown, labelKey: string): PodState | null {
  // podState() reads every field defensively; it only needs objects where the schema has objects.
  if (!isRecord(object) || !isRecord(object.metadata)) return null;
  const state = podState(object as V1Pod, labelKey);
  if (state === null || state.pod.uid === '') return null;
  return state.pod.hostNetwork ? state : { ...state, hostIps: NO_ADDRESSES };
}

export interface PodWatchOptions extends ListWatchTuning {
  kubeConfig: KubeConfig;
  /** The pod index's pods (PodIndex.pods). */
  sink: ListWatchSink<PodState>;
  logger: Logger;
  /** POD_IDENTIFIER_LABEL: the label whose value the PodRef keeps; '' keeps none. */
  labelKey: string;
  /** POD_WATCH_SCOPE=node: only the pods bound to this node (the API server's watch cache indexes them so). */
  nodeName?: string;
}

/** Running pods of every namespace, or of one node, converted to PodStates as they arrive. Call start(). */
export function createPodWatch(options: PodWatchOptions): ListWatch<PodState> {
  const { kubeConfig, labelKey, nodeName, ...rest } = options;
  return new ListWatch<PodState>({
    ...rest,
    resource: 'pods',
    kubeConfig,
    path: '/api/v1/pods',
    fieldSelector: runningPodsSelector(nodeName),
    list: podLister(kubeConfig),
    convert: (object) => apiPodState(object, labelKey),
  });
}

/** Pods of every namespace, for the watch's list and the lookup: `GET /api/v1/pods`. */
export function podLister(kubeConfig: KubeConfig): ListCall {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return itemsAsSent((request, options) => core.listPodForAllNamespaces(request, options));
}
