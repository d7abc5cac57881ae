/** One dropped packet, as the kernel logged it. Shared by every pipeline stage. */
export interface PacketDrop {
  /** Log time in epoch milliseconds (UTC). */
  time: number;
  /** Host that logged the line (journal _HOSTNAME or syslog host field); '' when unknown. */
  host: string;
  /** The log prefix as it appeared on the line, without trailing ':' or space. */
  prefix: string;
  /** Canonical IP text (IPv4 dotted quad, IPv6 RFC 5952 short form). */
  src: string;
  dst: string;
  ipVersion: 4 | 6;
  /** Protocol as the kernel names it (TCP, UDP, ICMP, ICMPv6, SCTP, 47, ...). */
  proto: string;
  srcPort: number | null;
  dstPort: number | null;
  /** Input / output interface; '' when the kernel printed an empty value. */
  in: string;
  out: string;
  mac: string | null;
  /** TTL (IPv4) or HOPLIMIT (IPv6). */
  ttl: number | null;
  /** Total packet length (first LEN= on the line). */
  length: number | null;
  /** ICMP / ICMPv6 type and code, when present. */
  icmpType: number | null;
  icmpCode: number | null;
  /** The policy the prefix names, with a template IPTABLES_LOG_PREFIX (see PolicyRef); absent otherwise. */
  policy?: PolicyRef;
}

/**
 * The policy whose Log rule logged a drop, read from a prefix with Calico's placeholders (see
 * parser/policy.ts); each part is null when the template does not hold it or the kernel cut it off.
 */
export interface PolicyRef {
  tier: string | null;
  /** The API kind (GlobalNetworkPolicy, NetworkPolicy, KubernetesNetworkPolicy, Profile, ...). */
  kind: string | null;
  /** Set for namespaced kinds only. */
  namespace: string | null;
  name: string | null;
  /** The kernel cut the prefix inside the name: the name may be longer. */
  cut: boolean;
}

/** What the pipeline keeps of a pod: small on purpose, one per indexed pod. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
  nodeName: string;
  hostNetwork: boolean;
  /** Value of POD_IDENTIFIER_LABEL on the pod, when that label is configured and set. */
  label: string | null;
  /** Every status.podIPs entry, canonical form. */
  ips: readonly string[];
}

/** Direction of a drop as seen from the pod that receives the event. */
export type Direction = 'send' | 'receive';

/** An Event the pipeline wants to exist on a pod (before aggregation). */
export interface EventIntent {
  pod: PodRef;
  direction: Direction;
  message: string;
  /**
   * What makes two intents one Event (with the pod, reason and source): the message itself, except for a
   * combined Event, whose message changes as peers are added while its subject stays.
   */
  subject: string;
  /** Whether this side went to a combined Event (counted as combined, not written or merged). */
  combined: boolean;
  /** Log time of the drop that caused it, epoch ms. */
  time: number;
  /** Node that saw the drop (source.host). */
  host: string;
  /** The drop itself, for metrics and retry deadlines. */
  drop: PacketDrop;
  /** The pod on the other side (the Event's `related`); undefined when it is none, or for a combined Event. */
  related: PodRef | undefined;
}

/**
 * One located side of a drop: the Running pod on the pod network that gets an Event for it, and the name of
 * the other side (its IP when nothing better is known).
 */
export interface DropSide {
  drop: PacketDrop;
  pod: PodRef;
  direction: Direction;
  peerName: string;
  /** The pod on the other side, when it is one. */
  peer?: PodRef;
  /** Node that saw the drop (source.host). */
  host: string;
}

/** Where the pipeline hands each located side; the events room turns sides into Events. Must not block. */
export interface DropSideSink {
  submit(side: DropSide): void;
}

/** Where intents go: the EventBook in replay, the API writer in the live agent. Must not block. */
export interface EventSink {
  submit(intent: EventIntent): void;
  /** True while the writes waiting exceed what the sink keeps apart; combining then starts earlier. */
  overloaded(): boolean;
}

/** One line from a log source, before parsing. */
export interface LogRecord {
  /**
   * Holds the kernel's message at [start, end): a journal MESSAGE, a /dev/kmsg record's text, or a log file
   * line (or a block of lines) whose syslog header was read up to `start`. A span rather than a cut-out
   * message, because the parser scans a sliced string markedly slower than the string it was cut from.
   */
  text: string;
  /** Where the message starts; absent: 0. */
  start?: number;
  /** Where the message ends; absent: text.length. */
  end?: number;
  /** Epoch ms; NaN when a log file line carries no timestamp that can be read. */
  time: number;
  /** The host that logged it; null when the entry names none. */
  host: string | null;
  /**
   * The syslog tag of a log file line when it is not the kernel's: any local process can write such a
   * line (`logger`), so it is reported, never turned into a drop.
   */
  untrustedTag?: string;
}

/** Furthest a Date can be from the epoch; beyond it toISOString throws. */
export const MAX_DATE_MS = 8.64e15;
