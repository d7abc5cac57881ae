import { LRUCache } from 'lru-cache';
import type { Direction, EventIntent, PacketDrop, PodRef } from '../types.ts';
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
/**
 * Combined Events counting at once. Each keeps up to COMBINED_COUNT_MAX peers and ports as 30-bit hashes
 * (small integers, ~16 bytes each), so all of them stay within ~20 MB; a collision undercounts by one.
 */
const TRACKED_COMBINED = 64;

/** Individual peers (or ports) of a group, by the log time they were last seen. */
type Recent = Map<string, number>;

/** One combined Event's episode: it ends when the window passes without a drop for it. */
interface Combined {
  peers: Set<number>;
  peersCapped: boolean;
  ports: Set<number>;
  examples: string[];
  last: number;
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
  private readonly sides = new LRUCache<string, Recent>({ max: TRACKED });
  private readonly groups = new LRUCache<string, Recent>({ max: TRACKED });
  private readonly combined = new LRUCache<string, Combined>({ max: TRACKED_COMBINED });

  constructor(repeatIntervalMs: number) {
    this.windowMs = Math.max(repeatIntervalMs, MIN_WINDOW_MS);
  }

  /** `peerName` names the other side (its IP when nothing better is known). */
  intent(
    drop: PacketDrop,
    pod: PodRef,
    direction: Direction,
    peerName: string,
    host: string,
    overloaded: boolean,
  ): EventIntent {
    const peerIp = direction === 'send' ? drop.dst : drop.src;
    const port = transport(drop);
    const side = `${pod.uid} ${direction}`;
    const base = { pod, direction, time: drop.time, host, drop };
    const ports = this.recent(this.sides, side, drop.time);
    if (!ports.has(port) && this.combines(side, ports, overloaded, drop.time)) {
      const combined = this.count(side, peerIp, port, `${peer(peerName, peerIp)} ${port}`, drop.time);
      const view = { ...viewOf(combined), direction, ports: combined.ports.size, transport: null };
      const subject = combinedSubject(direction, null);
      return { ...base, message: combinedMessage(view), subject, combined: true };
    }
    ports.set(port, drop.time);
    const group = `${side} ${port}`;
    const peers = this.recent(this.groups, group, drop.time);
    if (!peers.has(peerIp) && this.combines(group, peers, overloaded, drop.time)) {
      const combined = this.count(group, peerIp, port, peer(peerName, peerIp), drop.time);
      const view = { ...viewOf(combined), direction, ports: null, transport: port };
      const subject = combinedSubject(direction, port);
      return { ...base, message: combinedMessage(view), subject, combined: true };
    }
    peers.set(peerIp, drop.time);
    const message = dropMessage(direction, drop, peerName);
    return { ...base, message, subject: message, combined: false };
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

  private combines(key: string, recent: Recent, overloaded: boolean, at: number): boolean {
    const current = this.current(key, at);
    return current !== undefined || recent.size >= COMBINE_THRESHOLD || (overloaded && recent.size >= 1);
  }

  /** The combined Event's episode still under way at `at`, if any. */
  private current(key: string, at: number): Combined | undefined {
    const combined = this.combined.get(key);
    if (combined !== undefined && at - combined.last < this.windowMs) return combined;
    return undefined;
  }

  private count(key: string, peerIp: string, port: string, example: string, at: number): Combined {
    let combined = this.current(key, at);
    if (combined === undefined) {
      combined = { peers: new Set(), peersCapped: false, ports: new Set(), examples: [], last: at };
      this.combined.set(key, combined);
    }
    combined.last = Math.max(combined.last, at);
    const peerHash = hash30(peerIp);
    if (!combined.peers.has(peerHash)) {
      if (combined.peers.size < COMBINED_COUNT_MAX) combined.peers.add(peerHash);
      else combined.peersCapped = true;
    }
    if (combined.ports.size < COMBINED_COUNT_MAX) combined.ports.add(hash30(port));
    if (combined.examples.length < COMBINED_EXAMPLES && !combined.examples.includes(example)) {
      combined.examples.push(example);
    }
    return combined;
  }
}

function viewOf(combined: Combined) {
  return { peers: combined.peers.size, peersCapped: combined.peersCapped, examples: combined.examples };
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
