import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { isRecord, ListWatch, type ListWatchTuning } from '../kube/list-watch.ts';
import type { Logger } from '../log.ts';
import type { PodRef } from '../types.ts';
import { podState } from './pod-ref.ts';

/** The pod index the watch keeps up to date (implemented by the PodDirectory). */
export interface PodIndexSink {
  replacePods(pods: readonly PodRef[]): void;
  upsertPod(pod: PodRef): void;
  removePod(uid: string): void;
}

/**
 * Only Running pods can send or receive packets. With this selector the API server also reports a pod that
 * leaves Running (Succeeded, Failed, Unknown) as DELETED, so the index never has to look at phases.
 */
export const RUNNING_PODS = 'status.phase=Running';

/**
 * The PodRef of a pod from the API, or null when it is not a usable pod. A hostNetwork pod uses its node's
 * addresses, so those join its ips even when the API has not copied them into podIPs.
 */
export function podRefOf(object: unknown, labelKey: string): PodRef | null {
  // podState() reads every field defensively; it only needs objects where the schema has objects.
  if (!isRecord(object) || !isRecord(object.metadata)) return null;
  const state = podState(object as V1Pod, labelKey);
  if (state === null || state.pod.uid === '') return null;
  if (!state.pod.hostNetwork) return state.pod;
  return { ...state.pod, ips: [...new Set([...state.pod.ips, ...state.hostIps])] };
}

export interface PodWatchOptions extends ListWatchTuning {
  kubeConfig: KubeConfig;
  sink: PodIndexSink;
  logger: Logger;
  /** POD_IDENTIFIER_LABEL: the label whose value the PodRef keeps; '' keeps none. */
  labelKey: string;
}

/** Running pods of every namespace, converted to PodRefs as they arrive. Call start() on the result. */
export function createPodWatch(options: PodWatchOptions): ListWatch<PodRef> {
  const { kubeConfig, sink, labelKey, ...rest } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return new ListWatch<PodRef>({
    ...rest,
    resource: 'pods',
    kubeConfig,
    path: '/api/v1/pods',
    fieldSelector: RUNNING_PODS,
    list: (request, requestOptions) => core.listPodForAllNamespaces(request, requestOptions),
    convert: (object) => podRefOf(object, labelKey),
    sink: {
      replace: (pods) => sink.replacePods(pods),
      upsert: (pod) => sink.upsertPod(pod),
      remove: (pod) => sink.removePod(pod.uid),
    },
  });
}
