import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
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

/** What handOver needs of its source. */
export interface HandOverParts {
  metrics: Metrics;
  log: Logger;
  /** The source's input, for the log line of a batch the handler failed: "journal", "log file", ... */
  input: string;
  /** Epoch ms; present when the records carry their time, to set the source's lag by the newest. */
  now?: () => number;
}

/**
 * Hands a batch to the handler, counted as read, and resolves once the handler has taken it, to what the
 * handler said of it (nothing: settled at once). A handler that throws costs that batch, counted and logged,
 * never the source: it reads on.
 */
export async function handOver(
  records: readonly LogRecord[],
  handle: RecordHandler,
  { metrics, log, input, now }: HandOverParts,
): Promise<HandledBatch | undefined> {
  if (records.length === 0) return undefined;
  metrics.linesRead.inc(records.length);
  const newest = records[records.length - 1]!.time;
  if (now !== undefined) metrics.sourceLagSeconds.set(Math.max(0, (now() - newest) / 1000));
  try {
    return (await handle(records)) ?? undefined;
  } catch (err) {
    metrics.sourceErrors.inc({ reason: 'handler_failed' });
    log.error({ err }, `handling ${input} records failed`);
    return undefined;
  }
}
