import type { Counter } from 'prom-client';
import type { ListWatchSink } from '../kube/list-watch.ts';
import type { PodRef } from '../types.ts';
import type { Located, NodeAddresses, PodIndex, PodLocator, PodState } from './pod-index.ts';

const NO_KEYS: ReadonlySet<string> = new Set();

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

  keys(ip: string): ReadonlySet<string> {
    return this.byIp.get(ip) ?? NO_KEYS;
  }
}

/** Pods from hand-written files may lack a uid; namespace/name still identifies them. */
function podKey(pod: PodRef): string {
  return pod.uid !== '' ? pod.uid : `${pod.namespace}/${pod.name}`;
}

/** Addresses that belong to the pod's node: its hostIPs, and for hostNetwork pods their own IPs too. */
function hostAddressesOf(state: PodState): readonly string[] {
  if (state.pod.nodeName === '') return [];
  return state.pod.hostNetwork ? [...state.hostIps, ...state.pod.ips] : state.hostIps;
}

/**
 * Which of two Running pods on the pod network claiming one address is behind a drop at `at`. Two such pods
 * exist only while the status of a finished pod is stale and its IP already reused, so the pod that started
 * last is the one using it; but a pod started after the drop never takes it from one already Running.
 * Ties: the later creationTimestamp, then the namespace/name that sorts last, so the answer never depends
 * on the order the pods were indexed.
 */
function usesAddressRather(a: PodState, b: PodState, at: number): boolean {
  const aRunning = a.started <= at;
  if (aRunning !== b.started <= at) return aRunning;
  if (a.started !== b.started) return a.started > b.started;
  if (a.created !== b.created) return a.created > b.created;
  return `${a.pod.namespace}/${a.pod.name}` > `${b.pod.namespace}/${b.pod.name}`;
}

/**
 * In-memory pod index by IP, fed through `pods` and `nodes` (from a pods file in replay, from the pod and
 * node watches in the live agent), and through `remote` with pods the API server named on demand (see
 * PodLookup, whose bounded cache decides how long they stay). The watched pods are not a cache: they are
 * exactly the pods the source says exist. Addresses are looked up in canonical form, as drops and
 * podState() spell them.
 */
export class PodDirectory implements PodLocator, PodIndex {
  private readonly states = new Map<string, PodState>();
  private readonly runningByIp = new AddressIndex();
  private readonly hostAddressByIp = new AddressIndex();
  private readonly nodeAddresses = new Map<string, readonly string[]>();
  private readonly nodeByAddress = new Map<string, string>();
  /** Keys of the pods that came through `remote` and not (yet) through the watch. */
  private readonly remoteKeys = new Set<string>();
  /**
   * Pods a lookup found not Running (finished, or Pending with an address already): the watch never reports
   * those, and a pods file's are not used, so that replay names what it always named.
   */
  private readonly notRunningByIp = new AddressIndex();
  private readonly conflicts: Counter | undefined;
  private runningCount = 0;
  private runningListener: ((pod: PodRef) => void) | null = null;

  readonly pods: ListWatchSink<PodState> = {
    replace: (states) => {
      for (const key of [...this.states.keys()]) if (!this.remoteKeys.has(key)) this.removePod(key);
      for (const state of states) this.pods.upsert(state);
    },
    upsert: (state) => {
      this.remoteKeys.delete(podKey(state.pod));
      this.upsertPod(state);
    },
    remove: (state) => {
      this.remoteKeys.delete(podKey(state.pod));
      this.removePod(podKey(state.pod));
    },
  };

  /**
   * Pods found on demand, Running or finished. A pod the watch also reports is the watch's: what it says is
   * never replaced or removed from here, and its own removal ends the pod whatever its origin.
   */
  readonly remote: Omit<ListWatchSink<PodState>, 'replace'> = {
    upsert: (state) => {
      const key = podKey(state.pod);
      if (this.states.has(key) && !this.remoteKeys.has(key)) return;
      this.remoteKeys.add(key);
      this.upsertPod(state);
    },
    remove: (state) => {
      const key = podKey(state.pod);
      if (!this.remoteKeys.delete(key)) return;
      this.removePod(key);
    },
  };

  readonly nodes: ListWatchSink<NodeAddresses> = {
    replace: (nodes) => {
      for (const name of [...this.nodeAddresses.keys()]) this.removeNode(name);
      for (const node of nodes) this.upsertNode(node);
    },
    upsert: (node) => this.upsertNode(node),
    remove: (node) => this.removeNode(node.name),
  };

  /** `conflicts` counts lookups of an address two Running pods on the pod network claim at once. */
  constructor(conflicts?: Counter) {
    this.conflicts = conflicts;
  }

  /** Calls `listener` with every pod upserted Running, once the index has it. */
  onRunning(listener: (pod: PodRef) => void): void {
    this.runningListener = listener;
  }

  /** Running pods indexed (the pods_indexed gauge). */
  get size(): number {
    return this.runningCount;
  }

  locate(ip: string, at: number): Located {
    let chosen: PodState | undefined;
    let hostPod: PodState | undefined;
    let conflict = false;
    for (const key of this.runningByIp.keys(ip)) {
      const state = this.states.get(key);
      if (state === undefined) continue;
      if (state.pod.hostNetwork) hostPod = state;
      else if (chosen === undefined) chosen = state;
      else {
        conflict = true;
        if (usesAddressRather(state, chosen, at)) chosen = state;
      }
    }
    if (conflict) this.conflicts?.inc();
    if (chosen !== undefined && this.heldByOtherThen(ip, chosen, at))
      return { pod: undefined, node: undefined };
    if (chosen !== undefined) return { pod: chosen.pod, node: undefined };
    const node =
      hostPod !== undefined && hostPod.pod.nodeName !== '' ? hostPod.pod.nodeName : this.nodeOwning(ip);
    return { pod: hostPod?.pod, node };
  }

  /**
   * Whether a pod a lookup found not Running had the address at `at`, before `chosen` started: the address
   * was that pod's then (IP reuse), and a pod not Running now gets no Event.
   */
  private heldByOtherThen(ip: string, chosen: PodState, at: number): boolean {
    if (chosen.started <= at) return false;
    for (const key of this.notRunningByIp.keys(ip)) {
      const started = this.states.get(key)?.started;
      if (started !== undefined && started <= at) return true;
    }
    return false;
  }

  /** A declared node address first; else the node of the pod indexed last with it as a host address. */
  private nodeOwning(ip: string): string | undefined {
    const declared = this.nodeByAddress.get(ip);
    if (declared !== undefined) return declared;
    let node: string | undefined;
    for (const key of this.hostAddressByIp.keys(ip)) node = this.states.get(key)?.pod.nodeName ?? node;
    return node;
  }

  /** Adds or replaces a pod (keyed by uid). */
  private upsertPod(state: PodState): void {
    const key = podKey(state.pod);
    this.removePod(key);
    this.states.set(key, state);
    if (state.running) {
      this.runningByIp.add(state.pod.ips, key);
      this.runningCount++;
    } else if (!state.pod.hostNetwork && this.remoteKeys.has(key)) {
      this.notRunningByIp.add(state.pod.ips, key);
    }
    this.hostAddressByIp.add(hostAddressesOf(state), key);
    if (state.running) this.runningListener?.(state.pod);
  }

  private removePod(key: string): void {
    const state = this.states.get(key);
    if (state === undefined) return;
    this.states.delete(key);
    if (state.running) {
      this.runningByIp.delete(state.pod.ips, key);
      this.runningCount--;
    } else {
      this.notRunningByIp.delete(state.pod.ips, key);
    }
    this.hostAddressByIp.delete(hostAddressesOf(state), key);
  }

  /** Declares a node's addresses (from a Node object's status.addresses), replacing earlier ones. */
  private upsertNode(node: NodeAddresses): void {
    this.removeNode(node.name);
    this.nodeAddresses.set(node.name, node.addresses);
    for (const ip of node.addresses) this.nodeByAddress.set(ip, node.name);
  }

  private removeNode(name: string): void {
    for (const ip of this.nodeAddresses.get(name) ?? []) {
      if (this.nodeByAddress.get(ip) === name) this.nodeByAddress.delete(ip);
    }
    this.nodeAddresses.delete(name);
  }
}
