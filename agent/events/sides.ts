import type { DropSide, DropSideSink, EventSink } from '../types.ts';
import { Combiner, type CombinerState } from './combine.ts';

/**
 * The events room's entrance: each located drop side becomes an EventIntent, scans combined (see Combiner)
 * and combined sooner while `events` is overloaded, then goes to `events` (the API writer live, the
 * EventBook in replay).
 */
export class SideEvents implements DropSideSink {
  private readonly events: EventSink;
  private readonly combiner: Combiner;

  /** `saved`: what the agent before this one combined (live agent, after a restart). */
  constructor(events: EventSink, repeatIntervalMs: number, saved?: CombinerState) {
    this.events = events;
    this.combiner = new Combiner(repeatIntervalMs, saved);
  }

  submit(side: DropSide): void {
    this.events.submit(this.combiner.intent(side, this.events.overloaded()));
  }

  /** What a restarted agent needs to combine re-read drops the same way (see CombinerState). */
  combining(): CombinerState {
    return this.combiner.state();
  }
}
