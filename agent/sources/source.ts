import type { LogRecord } from '../types.ts';

/**
 * What a handler says of a batch it has taken: `settled` resolves once every drop in it is written or given
 * up for good; until then a restart must read the batch again.
 */
export interface HandledBatch {
  settled: Promise<void>;
}

/**
 * Receives batches in order; the source reads on once the returned promise settles, and checkpoints past a
 * batch once it and every earlier batch are settled (at once when the handler returns nothing).
 */
export type RecordHandler = (
  records: readonly LogRecord[],
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler with nothing to settle is an ordinary async function returning nothing
) => void | HandledBatch | Promise<void | HandledBatch>;

/** A source's problem until it first reads: readiness must not pass before the source has looked at its input. */
export const NOT_STARTED = 'not reading yet';

/** A look at a source's input beside its reader, to tell a source that silently stopped (see stall.ts). */
export interface SourceProgress {
  /** Bytes or entries taken from the input so far, handed over or skipped: it moves while reading works. */
  taken: number;
  /** The input holds data not taken yet, seen by looking at the input itself, not through the reader. */
  unread: boolean;
}

/**
 * A followed log. A source checkpoints only positions whose records the handler has settled, so a
 * restart re-reads at most what was in flight or not yet written.
 */
export interface LogSource {
  run(handle: RecordHandler): Promise<void>;
  /**
   * Stops reading, waits for the batch in flight, saves the checkpoint as far as batches are settled.
   * Calling it again later saves again (batches settled since).
   */
  stop(): Promise<void>;
  /**
   * Why the source cannot read now (not started yet, its input missing, journalctl not found, ...); null
   * once it reads.
   */
  problem(): string | null;
  progress(): Promise<SourceProgress>;
}
