import type { PodIdentifier } from '../config.ts';
import type { PodRef } from '../types.ts';
import type { Located } from './pod-index.ts';

/** A reverse DNS cache that answers at once: a name, or undefined while unknown (see reverse-dns.ts). */
export interface ReverseResolver {
  lookup(ip: string): string | undefined;
}

/** How a pod network pod is named in the other side's message and in packet_drops_count labels. */
export function podIdentity(pod: PodRef, identifier: PodIdentifier): string {
  switch (identifier) {
    case 'namespace':
      return pod.namespace;
    case 'name':
      return pod.name;
    case 'label':
      return pod.label ?? pod.name;
    case 'name_with_namespace':
      return `${pod.namespace}/${pod.name}`;
  }
}

/**
 * The name of the peer at `ip`, as the index located it: a pod network pod by POD_IDENTIFIER; a hostNetwork
 * pod or a node address by the node's name (the pod's name would blame whichever host-network pod happened
 * to be indexed last); then a cached reverse DNS name; else the IP itself.
 */
export function peerName(
  ip: string,
  located: Located,
  identifier: PodIdentifier,
  dns?: ReverseResolver,
): string {
  const { pod, node } = located;
  if (pod !== undefined && !pod.hostNetwork) return podIdentity(pod, identifier);
  return node ?? dns?.lookup(ip) ?? ip;
}
