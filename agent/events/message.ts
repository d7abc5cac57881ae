import type { Direction, PacketDrop, PolicyRef } from '../types.ts';

/**
 * "on port 12865/TCP" when the protocol has ports. Port-less protocols say what was dropped instead:
 * "over ICMP (type 8, code 0)", "over ICMPv6 (type 128, code 0)", "over GRE", and for a protocol the kernel
 * printed as a number "over IP protocol 47". ICMP type and code tell a blocked ping from, say, a blocked
 * "fragmentation needed", so they are part of the message (and thus of the Event's identity).
 */
export function transport(drop: PacketDrop): string {
  if (drop.dstPort !== null) return `on port ${drop.dstPort}/${drop.proto}`;
  const protocol = /^\d+$/.test(drop.proto) ? `IP protocol ${drop.proto}` : drop.proto;
  if (drop.icmpType === null) return `over ${protocol}`;
  const code = drop.icmpCode === null ? '' : `, code ${drop.icmpCode}`;
  return `over ${protocol} (type ${drop.icmpType}${code})`;
}

/** How the message names each kind: as users know them from kubectl and calicoctl. */
const KIND_NAMES: Readonly<Record<string, string>> = {
  KubernetesNetworkPolicy: 'Kubernetes NetworkPolicy',
  KubernetesClusterNetworkPolicy: 'Kubernetes ClusterNetworkPolicy',
  StagedKubernetesNetworkPolicy: 'StagedKubernetesNetworkPolicy',
  Profile: 'profile',
};

/**
 * " by GlobalNetworkPolicy default.netperf-policy", " by NetworkPolicy netperf-demo/netperf", with "…"
 * after a name the kernel cut; " by a NetworkPolicy in netperf-demo" when the cut left no name; '' when the
 * line named no policy, so the original's wording stays exactly as it was.
 */
export function policyText(policy: PolicyRef | undefined): string {
  if (policy === undefined) return '';
  const kind = policy.kind === null ? 'policy' : (KIND_NAMES[policy.kind] ?? policy.kind);
  if (policy.name === null) {
    if (policy.kind === null) return '';
    return ` by a ${kind}${policy.namespace === null ? '' : ` in ${policy.namespace}`}`;
  }
  const name = policy.namespace === null ? policy.name : `${policy.namespace}/${policy.name}`;
  return ` by ${kind} ${name}${policy.cut ? '…' : ''}`;
}

/** "name (ip)", or just the IP when no better name was found. */
export function peer(name: string, ip: string): string {
  return name === ip ? ip : `${name} (${ip})`;
}

/**
 * The Event message for the pod on one side of a drop; `peerName` names the other side, and the policy
 * its prefix named, if any, ends it. Everything else comes from the parser-validated drop, never from raw
 * log text.
 */
export function dropMessage(direction: Direction, drop: PacketDrop, peerName: string): string {
  const what =
    direction === 'send'
      ? `sending traffic to ${peer(peerName, drop.dst)}`
      : `receiving traffic from ${peer(peerName, drop.src)}`;
  return `Packet dropped when ${what} ${transport(drop)}${policyText(drop.policy)}`;
}

/** The API refuses an Event whose message (events.k8s.io/v1 `note`) is longer, in bytes. */
export const MAX_NOTE_BYTES = 1024;

/** A combined Event names at most this many of its peers. */
export const COMBINED_EXAMPLES = 3;

/** What a combined Event says: how many peers (and ports) it stands for, and a few of them. */
export interface CombinedView {
  direction: Direction;
  /** Distinct peers counted; `peersCapped` when counting stopped at that number. */
  peers: number;
  peersCapped: boolean;
  /**
   * Distinct ports (or port-less protocols), `portsCapped` when counting stopped at that number; null for
   * an Event about one port, whose `transport` is given.
   */
  ports: number | null;
  portsCapped: boolean;
  /** "on port 443/TCP" for an Event about one port. */
  transport: string | null;
  /** "name (ip)" of the first peers, or "name (ip) on port 22/TCP" for an Event about many ports. */
  examples: readonly string[];
}

/**
 * A count with thousands separators, as en-US writes it ("5,000"). Not Intl.NumberFormat: constructing one
 * maps ICU's locale data into the process, about 4.5 MiB of resident memory for the agent's whole life.
 */
function grouped(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+$)/g, ',');
}

function counted(n: number, capped: boolean, one: string, many: string): string {
  return `${capped ? 'more than ' : ''}${grouped(n)} ${n === 1 && !capped ? one : many}`;
}

function peersPart(direction: Direction, count: string): string {
  return direction === 'send' ? `sending traffic to ${count}` : `receiving traffic from ${count}`;
}

/**
 * The message of a combined Event: "Packet dropped when receiving traffic from 5,000 sources on port
 * 443/TCP (e.g. 198.18.0.1, 198.18.0.2, 198.18.0.3, …)", or for many ports "... from 3 sources on 57
 * ports (e.g. 10.0.0.9 on port 22/TCP, …)". Peers are sources when receiving, destinations when sending.
 */
export function combinedMessage(view: CombinedView): string {
  const [one, many] = view.direction === 'send' ? ['destination', 'destinations'] : ['source', 'sources'];
  const peers = peersPart(view.direction, counted(view.peers, view.peersCapped, one, many));
  const where =
    view.ports === null
      ? (view.transport ?? '')
      : `on ${counted(view.ports, view.portsCapped, 'port', 'ports')}`;
  const head = `Packet dropped when ${peers} ${where}`;
  // Names are bounded (DNS names, label values), so one example always fits; three long ones may not.
  let examples = view.examples.length;
  let message = `${head} (e.g. ${view.examples.join(', ')}, …)`;
  while (Buffer.byteLength(message) > MAX_NOTE_BYTES && examples > 1) {
    examples--;
    message = `${head} (e.g. ${view.examples.slice(0, examples).join(', ')}, …)`;
  }
  return message;
}

/** What stays the same while a combined Event's message counts on: it names the Event. */
export function combinedSubject(direction: Direction, transportText: string | null): string {
  const peers = peersPart(direction, direction === 'send' ? 'many destinations' : 'many sources');
  return `Packet dropped when ${peers} ${transportText ?? 'on many ports'}`;
}
