import type { EventIntent, EventSink, PolicyRef } from '../types.ts';
import { aggregationKey, type CoreEvent, type EventConfig, eventBody, type Occurrence } from './event.ts';

export type RecordOutcome = 'created' | 'incremented';

/** An Event as replay prints it: the core/v1 Event, and the policy its message names, if any. */
export interface BookedEvent extends CoreEvent {
  policy?: PolicyRef;
}

interface Entry extends Occurrence {
  intent: EventIntent;
}

/**
 * The Events that would exist in the cluster, aggregated in memory (replay and tests). It keeps every
 * Event of its run on purpose: it is the result, not a cache, and replay's input bounds it.
 */
export class EventBook implements EventSink {
  private readonly entries = new Map<string, Entry>();
  private readonly config: EventConfig;

  constructor(config: EventConfig) {
    this.config = config;
  }

  submit(intent: EventIntent): void {
    this.record(intent);
  }

  /** Replay writes nothing: it never falls behind. */
  overloaded(): boolean {
    return false;
  }

  /**
   * A new Event, or the existing one with count + 1 and the latest message (a combined one counts on);
   * timestamps widen so out-of-order lines cannot shrink them.
   */
  record(intent: EventIntent): RecordOutcome {
    const key = aggregationKey(intent, this.config);
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.entries.set(key, { intent, count: 1, first: intent.time, last: intent.time });
      return 'created';
    }
    entry.count++;
    entry.intent = intent;
    entry.first = Math.min(entry.first, intent.time);
    entry.last = Math.max(entry.last, intent.time);
    return 'incremented';
  }

  /** Ordered by firstTimestamp, then namespace, then Event name, so output is stable across runs. */
  list(): BookedEvent[] {
    return [...this.entries.values()]
      .map(({ intent, ...seen }): BookedEvent => {
        const event = eventBody(intent, this.config, seen);
        const { policy } = intent.drop;
        // A combined Event stands for many drops and names no policy.
        return policy === undefined || intent.combined ? event : { ...event, policy };
      })
      .sort(
        (a, b) =>
          compare(a.firstTimestamp, b.firstTimestamp) ||
          compare(a.metadata.namespace, b.metadata.namespace) ||
          compare(a.metadata.name, b.metadata.name),
      );
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
