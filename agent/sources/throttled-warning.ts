import type { Logger } from '../log.ts';

const DEFAULT_INTERVAL_MS = 60_000;

/**
 * A warning about bad input that may recur on every line: the first occurrence is logged at once, later
 * ones at most once an interval with how many there were, so that hostile input cannot flood the log.
 * Counting each occurrence is the metric's job, not this one's.
 */
export class ThrottledWarning {
  private readonly log: Logger;
  private readonly message: string;
  private readonly intervalMs: number;
  private sinceLog = 0;
  private loggedAt = Number.NEGATIVE_INFINITY;

  constructor(log: Logger, message: string, intervalMs = DEFAULT_INTERVAL_MS) {
    this.log = log;
    this.message = message;
    this.intervalMs = intervalMs;
  }

  /** One occurrence; `fields` describe the latest and go into the log line if one is written now. */
  note(fields: Record<string, unknown>): void {
    this.sinceLog++;
    const now = performance.now();
    if (now - this.loggedAt < this.intervalMs) return;
    this.log.warn({ ...fields, skipped: this.sinceLog }, this.message);
    this.loggedAt = now;
    this.sinceLog = 0;
  }
}
