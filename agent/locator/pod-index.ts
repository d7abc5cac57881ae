import type { ListWatchSink } from '../kube/list-watch.ts';
import type { PodRef } from '../types.ts';

/** A pod as the index keeps it (see podState() for the conversion from the API object). */
export interface PodState {
  pod: PodRef;
  running: boolean;
  /** status.hostIPs: addresses of the node the pod is bound to, canonical form. */
  hostIps: readonly string[];
  /** status.startTime, epoch ms; -Infinity when absent (not started yet, or a hand-written pods file). */
  started: number;
  /** metadata.creationTimestamp, epoch ms; -Infinity when absent. */
  created: number;
}

/** A node's name and canonical IP addresses (InternalIP, ExternalIP). */
export interface NodeAddresses {
  name: string;
  addresses: string[];
}

/**
 * What the index knows of one address: the Running pod using it (a pod network pod wins over hostNetwork
 * pods sharing a node's IP), else the node owning it; both undefined when it is neither.
 */
export interface Located {
  pod: PodRef | undefined;
  /** Set only when `pod` is undefined or a hostNetwork pod: those are named by their node. */
  node: string | undefined;
}

/** What the pipeline asks about a canonical address (PacketDrop's src and dst are canonical). */
export interface PodLocator {
  /** `at`: the drop's time, so that a pod started after it is not blamed while another one was Running. */
  locate(ip: string, at: number): Located;
}

/**
 * The one way pods and nodes reach the index, the shape the list-watches feed: replay's pods file goes in
 * by pods.replace, the pod and node watches by all three methods.
 */
export interface PodIndex {
  readonly pods: ListWatchSink<PodState>;
  readonly nodes: ListWatchSink<NodeAddresses>;
}
