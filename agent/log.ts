import { pino } from 'pino';
import type { LogLevel } from './config.ts';

export type Logger = pino.Logger;

/** JSON logs on stderr, so stdout stays free for the CLI's machine-readable output. */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { component: 'kube-iptables-tailer' } }, pino.destination(2));
}

const DEFAULT_INTERVAL_MS = 60_000;

/**
 * A warning that may recur on every line (bad input, drops given up): the first occurrence is logged at once, later
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

  /** `count` occurrences; `fields` describe the latest and go into the log line if one is written now. */
  note(fields: Record<string, unknown>, count = 1): void {
    this.sinceLog += count;
    const now = performance.now();
    if (now - this.loggedAt < this.intervalMs) return;
    this.log.warn({ ...fields, skipped: this.sinceLog }, this.message);
    this.loggedAt = now;
    this.sinceLog = 0;
  }
}
