import type { SourceProgress } from './source.ts';

/**
 * Tells a source that has silently stopped: its input holds data it has not taken, and it has taken
 * nothing, at every look for `limitMs`. A source waiting for the handler (back-pressure from the Event
 * writer) is busy, not stalled. Time is the caller's, so the rule is tested without waiting.
 */
export class StallWatch {
  private readonly limitMs: number;
  private taken: number | null = null;
  /** When the looks began to find unread input with nothing taken; null while reading keeps up. */
  private since: number | null = null;

  constructor(limitMs: number) {
    this.limitMs = limitMs;
  }

  /** One look at the source; `busy` while its handler holds a batch. */
  observe(progress: SourceProgress, busy: boolean, now: number): void {
    const moved = progress.taken !== this.taken;
    this.taken = progress.taken;
    if (busy || moved || !progress.unread) this.since = null;
    else this.since ??= now;
  }

  /** How long unread input has waited with nothing taken; 0 while reading keeps up. */
  stalledMs(now: number): number {
    return this.since === null ? 0 : now - this.since;
  }

  stalled(now: number): boolean {
    return this.since !== null && this.stalledMs(now) >= this.limitMs;
  }
}
