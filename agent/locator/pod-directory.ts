import { canonicalIp } from '../net.ts';
import type { PodRef } from '../types.ts';
import type { NodeAddresses, NodeIndexSink } from './node-watch.ts';
import type { PodIndexSink } from './pod-watch.ts';

/** What the pipeline asks about an address. Replay and the live pod watch answer it with a PodDirectory. */
export interface PodLocator {
  /** The Running pod using this IP; a pod network pod wins over hostNetwork pods sharing a node's IP. */
  podByIp(ip: string): PodRef | undefined;
  /** The node that owns this address (hostNetwork pods use their node's addresses). */
  nodeByIp(ip: string): string | undefined;
}

/** A pod as the directory indexes it (see podState() for the conversion from the API object). */
export interface PodState {
  pod: PodRef;
  running: boolean;
  /** status.hostIPs: addresses of the node the pod is bound to, canonical form. */
  hostIps: readonly string[];
}

/** Multimap from an address to the keys of the pods using it; iteration order is upsert order. */
class AddressIndex {
  private readonly byIp = new Map<string, Set<string>>();

  add(ips: Iterable<string>, key: string): void {
    for (const ip of ips) {
      const keys = this.byIp.get(ip);
      if (keys === undefined) this.byIp.set(ip, new Set([key]));
      else keys.add(key);
    }
  }

  delete(ips: Iterable<string>, key: string): void {
    for (const ip of ips) {
      const keys = this.byIp.get(ip);
      keys?.delete(key);
      if (keys?.size === 0) this.byIp.delete(ip);
    }
  }

  keys(ip: string): readonly string[] {
    return [...(this.byIp.get(ip) ?? [])];
  }
}

/** Pods from hand-written files may lack a uid; namespace/name still identifies them. */
function podKey(pod: PodRef): string {
  return pod.uid !== '' ? pod.uid : `${pod.namespace}/${pod.name}`;
}

/** Addresses that belong to the pod's node: its hostIPs, and for hostNetwork pods their own IPs too. */
function nodeAddressesOf(state: PodState): readonly string[] {
  if (state.pod.nodeName === '') return [];
  return state.pod.hostNetwork ? [...state.hostIps, ...state.pod.ips] : state.hostIps;
}

/**
 * In-memory pod index by IP, fed by upsert/remove (from a pods file in replay, from the pod watch in the
 * live agent). Not a cache: it holds exactly the pods the source says exist, so it is not LRU-bounded.
 */
export class PodDirectory implements PodLocator, PodIndexSink, NodeIndexSink {
  private readonly pods = new Map<string, PodState>();
  private readonly runningByIp = new AddressIndex();
  private readonly nodeAddressByIp = new AddressIndex();
  private readonly nodes = new Map<string, readonly string[]>();
  private readonly nodeByAddress = new Map<string, string>();
  private runningCount = 0;
  private runningListener: ((pod: PodRef) => void) | null = null;

  /** Calls `listener` with every pod upserted Running, once the index has it. */
  onRunning(listener: (pod: PodRef) => void): void {
    this.runningListener = listener;
  }

  /** Adds or replaces a pod (keyed by uid); the latest upsert wins ties between pods sharing an IP. */
  upsert(state: PodState): void {
    const key = podKey(state.pod);
    this.remove(key);
    this.pods.set(key, state);
    if (state.running) {
      this.runningByIp.add(state.pod.ips, key);
      this.runningCount++;
    }
    this.nodeAddressByIp.add(nodeAddressesOf(state), key);
    if (state.running) this.runningListener?.(state.pod);
  }

  /** Forgets a pod by uid (or namespace/name for a uid-less pod); false when it was not indexed. */
  remove(uid: string): boolean {
    const state = this.pods.get(uid);
    if (state === undefined) return false;
    this.pods.delete(uid);
    if (state.running) {
      this.runningByIp.delete(state.pod.ips, uid);
      this.runningCount--;
    }
    this.nodeAddressByIp.delete(nodeAddressesOf(state), uid);
    return true;
  }

  /**
   * The live pod watch's side: it sees Running pods only (the field selector) and has already folded a
   * hostNetwork pod's host IPs into its ips; node addresses come from the node watch.
   */
  replacePods(pods: readonly PodRef[]): void {
    for (const uid of this.uids()) this.remove(uid);
    for (const pod of pods) this.upsertPod(pod);
  }

  upsertPod(pod: PodRef): void {
    this.upsert({ pod, running: true, hostIps: pod.hostNetwork ? pod.ips : [] });
  }

  removePod(uid: string): void {
    this.remove(uid);
  }

  replaceNodes(nodes: readonly NodeAddresses[]): void {
    for (const name of [...this.nodes.keys()]) this.removeNode(name);
    for (const node of nodes) this.setNodeAddresses(node.name, node.addresses);
  }

  upsertNode(name: string, addresses: readonly string[]): void {
    this.setNodeAddresses(name, addresses);
  }

  /** Keys of every indexed pod, so a relist can remove the pods that vanished. */
  uids(): string[] {
    return [...this.pods.keys()];
  }

  /** Running pods indexed (the pods_indexed gauge). */
  get size(): number {
    return this.runningCount;
  }

  /** Declares a node's addresses (e.g. from a Node object's status.addresses), replacing earlier ones. */
  setNodeAddresses(nodeName: string, addresses: readonly string[]): void {
    this.removeNode(nodeName);
    const ips = addresses.map(canonicalIp).filter((ip) => ip !== null);
    this.nodes.set(nodeName, ips);
    for (const ip of ips) this.nodeByAddress.set(ip, nodeName);
  }

  removeNode(nodeName: string): void {
    for (const ip of this.nodes.get(nodeName) ?? []) {
      if (this.nodeByAddress.get(ip) === nodeName) this.nodeByAddress.delete(ip);
    }
    this.nodes.delete(nodeName);
  }

  podByIp(ip: string): PodRef | undefined {
    const candidates = this.lookup(this.runningByIp, ip);
    return (candidates.findLast((state) => !state.pod.hostNetwork) ?? candidates.at(-1))?.pod;
  }

  nodeByIp(ip: string): string | undefined {
    const canonical = canonicalIp(ip) ?? ip;
    return (
      this.nodeByAddress.get(canonical) ?? this.lookup(this.nodeAddressByIp, canonical).at(-1)?.pod.nodeName
    );
  }

  private lookup(index: AddressIndex, ip: string): PodState[] {
    return index
      .keys(canonicalIp(ip) ?? ip)
      .map((key) => this.pods.get(key))
      .filter((state) => state !== undefined);
  }
}
