/** One line from a log source, before parsing. */
export interface LogRecord {
  /** The line (file source) or the journal MESSAGE (journal source). */
  text: string;
  /** Journal __REALTIME_TIMESTAMP in epoch ms; null when the time must come from the line itself. */
  time: number | null;
  /** Journal _HOSTNAME; null when the host must come from the line itself. */
  host: string | null;
}

/** Receives batches in order; the source reads on only after the returned promise settles. */
export type RecordHandler = (records: readonly LogRecord[]) => void | Promise<void>;

/**
 * A followed log. A source checkpoints only positions whose records the handler has finished with,
 * so a restart re-reads at most what was in flight.
 */
export interface LogSource {
  run(handle: RecordHandler): Promise<void>;
  /** Stops reading, waits for the batch in flight, saves the checkpoint. */
  stop(): Promise<void>;
}
