import type { EventIntent } from '../types.ts';
import { type DropBatch, DropTally } from './tally.ts';

/**
 * 'write' creates or patches; 'reconcile' reads an Event that a create found already there (written by an
 * earlier run of the agent) to learn which drops it counts.
 */
export type Stage = 'write' | 'reconcile';

/** The call in flight for a pending Event: which drops it carries and since which receipt they wait. */
export interface Write {
  drops: DropBatch;
  /** Whether it carries the side that opened the entry (counted as written; the others as merged). */
  opener: boolean;
  seq: number | null;
}

/** One Event to create or update: every drop side with its key merges here while it waits. */
export interface PendingEvent {
  readonly key: string;
  readonly name: string;
  /** The latest side: pod and host are those of every side with this key; a combined message counts on. */
  intent: EventIntent;
  readonly tally: DropTally;
  stage: Stage;
  writing: Write | null;
  /** Failed calls in a row: how far the retry backoff has grown. */
  failures: number;
  /** Monotonic ms before which a retry waits. */
  notBefore: number;
  /** When it was opened, as a count of entries opened before it: the order of news. */
  readonly opened: number;
  /** Whether the side that opened it is still unwritten. */
  opener: boolean;
  /** Receipt of the oldest side not carried by a finished or in-flight write; null when none is. */
  waitingSeq: number | null;
}

export function openPending(
  key: string,
  name: string,
  intent: EventIntent,
  seq: number,
  opened: number,
): PendingEvent {
  return {
    key,
    name,
    intent,
    tally: new DropTally(intent.time),
    stage: 'write',
    writing: null,
    failures: 0,
    notBefore: 0,
    opened,
    opener: true,
    waitingSeq: seq,
  };
}

/** Adds a side to the Event it belongs to; the latest side's message is the one written. */
export function mergeInto(entry: PendingEvent, intent: EventIntent, seq: number): void {
  entry.tally.add(intent.time);
  entry.intent = intent;
  entry.waitingSeq ??= seq;
}

/** Hands the entry's waiting drops to a call. */
export function startWrite(entry: PendingEvent): Write {
  const write = { drops: entry.tally.batch(), opener: entry.opener, seq: entry.waitingSeq };
  entry.writing = write;
  entry.opener = false;
  entry.waitingSeq = null;
  return write;
}

/** A call that must be made again: its drops wait once more, as old as they were. */
export function undoWrite(entry: PendingEvent, write: Write): void {
  entry.writing = null;
  entry.opener ||= write.opener;
  if (write.seq !== null) entry.waitingSeq = Math.min(write.seq, entry.waitingSeq ?? write.seq);
}

/** The call's drops are done with (written or given up); those merged while it was in flight stay. */
export function finishWrite(entry: PendingEvent, write: Write): void {
  entry.writing = null;
  entry.tally.forget(write.drops);
}

/** The oldest receipt any pending side still holds; Infinity when none does. */
export function oldestSeq(entries: Iterable<PendingEvent>): number {
  let oldest = Number.POSITIVE_INFINITY;
  for (const entry of entries) {
    if (entry.waitingSeq !== null) oldest = Math.min(oldest, entry.waitingSeq);
    if (entry.writing?.seq != null) oldest = Math.min(oldest, entry.writing.seq);
  }
  return oldest;
}
