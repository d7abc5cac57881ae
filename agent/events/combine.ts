import type { LRUCache } from 'lru-cache';
import { boundedLru } from '../lru.ts';
import type { DropSide, EventIntent } from '../types.ts';
import {
  COMBINED_EXAMPLES,
  combinedMessage,
  combinedSubject,
  dropMessage,
  peer,
  transport,
} from './message.ts';

/**
 * A pod side gets Events of its own for this many distinct peers on one port, and for this many distinct
 * ports, within the window; further ones are combined. client-go's aggregator combines past 10 similar
 * Events too.
 */
export const COMBINE_THRESHOLD = 10;
/** Distinct peers (and ports) a combined Event counts; beyond that its message says "more than". */
export const COMBINED_COUNT_MAX = 10_000;
/** The window never shrinks below this, so that a REPEATED_EVENTS_INTERVAL_MINUTES of 0 still sees scans. */
export const MIN_WINDOW_MS = 60_000;
/** Pod sides and (pod side, port) groups remembered; each holds at most COMBINE_THRESHOLD entries. */
const TRACKED = 10_000;
/** Combined Events counting at once: a storm between many pods has one per busy pod side and port. */
const TRACKED_COMBINED = 4_096;
/**
 * Peers and ports all combined Events count together, as 30-bit hashes (small integers, ~16 bytes each, so
 * ~4 MB): past it, a combined Event counts no new peer and says "more than". A collision undercounts by one.
 */
const TRACKED_BUDGET = 262_144;

/** Individual peers (or ports) of a group, by the log time they were last seen. */
type Recent = Map<string, number>;

/**
 * What a restarted agent needs to combine re-read drops as the agent before it did: which peers and ports
 * had Events of their own, and the combined Events' episodes. Otherwise a re-read drop that went into a
 * combined Event could open an Event of its own and be counted twice.
 */
export interface CombinerState {
  sides: [string, [string, number][]][];
  groups: [string, [string, number][]][];
  combined: [string, CombinedState][];
}

interface CombinedState {
  peers: number[];
  peersCapped: boolean;
  ports: number[];
  portsCapped: boolean;
  examples: string[];
  last: number;
}

const isNumber = (value: unknown): value is number => typeof value === 'number';
const isString = (value: unknown): value is string => typeof value === 'string';

function isPairList<T>(value: unknown, isValue: (item: unknown) => item is T): value is [string, T][] {
  return (
    Array.isArray(value) &&
    value.every((item) => Array.isArray(item) && item.length === 2 && isString(item[0]) && isValue(item[1]))
  );
}

function isRecent(value: unknown): value is [string, number][] {
  return isPairList(value, isNumber);
}

function isCombinedState(value: unknown): value is CombinedState {
  const v = value as Partial<CombinedState> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    Array.isArray(v.peers) &&
    v.peers.every(isNumber) &&
    typeof v.peersCapped === 'boolean' &&
    Array.isArray(v.ports) &&
    v.ports.every(isNumber) &&
    typeof v.portsCapped === 'boolean' &&
    Array.isArray(v.examples) &&
    v.examples.every(isString) &&
    isNumber(v.last)
  );
}

/** A saved state as read back from disk: anything else is ignored, never trusted. */
export function isCombinerState(value: unknown): value is CombinerState {
  const v = value as Partial<CombinerState> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    isPairList(v.sides, isRecent) &&
    isPairList(v.groups, isRecent) &&
    isPairList(v.combined, isCombinedState)
  );
}

/**
 * One combined Event's episode: it ends when the window passes without a drop for it. It counts the peers
 * and ports that got Events of their own before it too, so that a scan of 5,000 sources says 5,000.
 */
interface Combined {
  peers: Set<number>;
  peersCapped: boolean;
  ports: Set<number>;
  portsCapped: boolean;
  examples: string[];
  last: number;
}

/** Hashes of the peers and ports a group saw before its combined Event starts, which counts them too. */
interface Members {
  peers: Iterable<number>;
  ports: Iterable<number>;
}

/**
 * Turns each side of a drop into an EventIntent, combining scans: once a pod side has drops from more than
 * COMBINE_THRESHOLD peers on one port within the window (the repeat interval), further peers go into one
 * Event for that port ("from 5,000 sources on port 443/TCP"); once it has more than COMBINE_THRESHOLD
 * ports, further ports go into one Event for the pod side ("from 3 sources on 57 ports"). While the sink
 * is overloaded, a group that already has an Event combines its next peer (or port) at once. Times are
 * the log's, so replay combines as the live agent does.
 */
export class Combiner {
  private readonly windowMs: number;
  private readonly sides = boundedLru<string, Recent>(TRACKED);
  private readonly groups = boundedLru<string, Recent>(TRACKED);
  private readonly combined = boundedLru<string, Combined>(TRACKED_COMBINED, {
    dispose: (combined) => {
      this.tracked -= combined.peers.size + combined.ports.size;
    },
  });
  /** Peers and ports counted by the combined Events kept. */
  private tracked = 0;

  constructor(repeatIntervalMs: number, saved?: CombinerState) {
    this.windowMs = Math.max(repeatIntervalMs, MIN_WINDOW_MS);
    if (saved === undefined) return;
    // Least recently used first, so the caches keep their order.
    for (const [key, members] of saved.sides) this.sides.set(key, new Map(members));
    for (const [key, members] of saved.groups) this.groups.set(key, new Map(members));
    for (const [key, c] of saved.combined) {
      this.combined.set(key, {
        ...c,
        peers: new Set(c.peers),
        ports: new Set(c.ports),
        examples: [...c.examples],
      });
    }
  }

  /** The state to save at shutdown, least recently used first. */
  state(): CombinerState {
    const recent = (cache: LRUCache<string, Recent>): [string, [string, number][]][] =>
      [...cache.entries()].reverse().map(([key, members]) => [key, [...members]]);
    const combined = [...this.combined.entries()]
      .reverse()
      .map(([key, c]): [string, CombinedState] => [key, { ...c, peers: [...c.peers], ports: [...c.ports] }]);
    return { sides: recent(this.sides), groups: recent(this.groups), combined };
  }

  /** The side's Event: its own, or a combined one. `overloaded`: the sink's, at this side. */
  intent(dropSide: DropSide, overloaded: boolean): EventIntent {
    const { drop, pod, direction, peerName, peer: related, host } = dropSide;
    const peerIp = direction === 'send' ? drop.dst : drop.src;
    const port = transport(drop);
    const side = `${pod.uid} ${direction}`;
    const base = { pod, direction, time: drop.time, host, drop };
    const ports = this.recent(this.sides, side, drop.time);
    if (!ports.has(port) && this.combines(side, ports, overloaded, drop.time)) {
      const members = { peers: this.portPeers(side, ports, drop.time), ports: hashes(ports.keys()) };
      const example = `${peer(peerName, peerIp)} ${port}`;
      const combined = this.count(side, members, peerIp, port, example, drop.time);
      const view = { ...viewOf(combined), direction, ports: combined.ports.size, transport: null };
      const subject = combinedSubject(direction, null);
      return { ...base, message: combinedMessage(view), subject, combined: true, related: undefined };
    }
    ports.set(port, drop.time);
    const group = `${side} ${port}`;
    const peers = this.recent(this.groups, group, drop.time);
    if (!peers.has(peerIp) && this.combines(group, peers, overloaded, drop.time)) {
      const members = { peers: hashes(peers.keys()), ports: [] };
      const combined = this.count(group, members, peerIp, port, peer(peerName, peerIp), drop.time);
      const view = { ...viewOf(combined), direction, ports: null, transport: port };
      const subject = combinedSubject(direction, port);
      return { ...base, message: combinedMessage(view), subject, combined: true, related: undefined };
    }
    peers.set(peerIp, drop.time);
    const message = dropMessage(direction, drop, peerName);
    return { ...base, message, subject: message, combined: false, related };
  }

  /** The group's members seen within the window of `at`. */
  private recent(cache: LRUCache<string, Recent>, key: string, at: number): Recent {
    let recent = cache.get(key);
    if (recent === undefined) {
      recent = new Map();
      cache.set(key, recent);
    }
    for (const [member, last] of recent) if (at - last >= this.windowMs) recent.delete(member);
    return recent;
  }

  /** The peers seen within the window of `at` on a pod side's ports that it did not combine yet. */
  private *portPeers(side: string, ports: Recent, at: number): Iterable<number> {
    for (const port of ports.keys()) {
      const group = `${side} ${port}`;
      for (const [member, last] of this.groups.peek(group) ?? []) {
        if (at - last < this.windowMs) yield hash30(member);
      }
      const combined = this.combined.peek(group);
      if (this.ongoing(combined, at)) yield* combined.peers;
    }
  }

  private combines(key: string, recent: Recent, overloaded: boolean, at: number): boolean {
    const current = this.current(key, at);
    return current !== undefined || recent.size >= COMBINE_THRESHOLD || (overloaded && recent.size >= 1);
  }

  /** The combined Event's episode still under way at `at`, if any. */
  private current(key: string, at: number): Combined | undefined {
    const combined = this.combined.get(key);
    return this.ongoing(combined, at) ? combined : undefined;
  }

  private ongoing(combined: Combined | undefined, at: number): combined is Combined {
    return combined !== undefined && at - combined.last < this.windowMs;
  }

  private count(
    key: string,
    individual: Members,
    peerIp: string,
    port: string,
    example: string,
    at: number,
  ): Combined {
    let combined = this.current(key, at);
    if (combined === undefined) {
      combined = {
        peers: new Set(),
        peersCapped: false,
        ports: new Set(),
        portsCapped: false,
        examples: [],
        last: at,
      };
      this.combined.set(key, combined);
      for (const member of individual.peers) this.addPeer(combined, member);
      for (const member of individual.ports) this.addPort(combined, member);
    }
    combined.last = Math.max(combined.last, at);
    this.addPeer(combined, hash30(peerIp));
    this.addPort(combined, hash30(port));
    if (combined.examples.length < COMBINED_EXAMPLES && !combined.examples.includes(example)) {
      combined.examples.push(example);
    }
    return combined;
  }

  private addPeer(combined: Combined, peer: number): void {
    if (!this.add(combined.peers, peer)) combined.peersCapped = true;
  }

  private addPort(combined: Combined, port: number): void {
    if (!this.add(combined.ports, port)) combined.portsCapped = true;
  }

  /** False when the member is new but the Event or the budget is full: it goes uncounted. */
  private add(members: Set<number>, hash: number): boolean {
    if (members.has(hash)) return true;
    if (members.size >= COMBINED_COUNT_MAX || this.tracked >= TRACKED_BUDGET) return false;
    members.add(hash);
    this.tracked++;
    return true;
  }
}

function viewOf(combined: Combined) {
  const { peersCapped, portsCapped, examples } = combined;
  return { peers: combined.peers.size, peersCapped, portsCapped, examples };
}

function* hashes(texts: Iterable<string>): Iterable<number> {
  for (const text of texts) yield hash30(text);
}

/**
 * FNV-1a over UTF-16 code units, cut to 30 bits so that V8 keeps it as a small integer: cheap, and spreads
 * the short texts of addresses and ports well.
 */
function hash30(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash & 0x3fffffff;
}
