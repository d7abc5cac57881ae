// Stand-ins for time and for the API server, for the writer's timed logic (rates, bursts, backoff,
// deadlines): with them those tests run in milliseconds and exactly, instead of waiting on a wall clock.
// What depends on the real API server's answers is proven against it in writer.test.ts and the e2e tests.

import { ApiException } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { EventApi, EventCount, Verb } from '../../agent/events/api.ts';
import type { CoreEvent } from '../../agent/events/event.ts';
import { type Clock, EventWriter, type WriterConfig } from '../../agent/events/writer.ts';
import { Metrics } from '../../agent/metrics.ts';
import type { EventIntent, PodRef } from '../../agent/types.ts';
import { config, drop } from '../pipeline/fixtures.ts';

/** Lets every promise continuation that is ready run. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Monotonic ms that only move when told; timers fire in time order as it moves. */
export class FakeClock implements Clock {
  private at = 0;
  private nextId = 0;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.at;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.at + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(timer: unknown): void {
    this.timers.delete(timer as number);
  }

  /** Moves time forward by ms, firing due timers in order and letting their continuations run. */
  async advance(ms: number): Promise<void> {
    const target = this.at + ms;
    for (;;) {
      await turn();
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.timers)
        if (entry[1].at <= target && (!due || entry[1].at < due[1].at)) due = entry;
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.at = Math.max(this.at, due[1].at);
      due[1].callback();
    }
    this.at = target;
    await turn();
  }
}

export interface Call {
  verb: Verb;
  at: number;
  name: string;
  count: number;
  message: string | undefined;
}

type Answer = () => Promise<void>;

/** An EventApi that records each call with the fake time; answers are success unless scripted. */
export class FakeApi implements EventApi {
  readonly calls: Call[] = [];
  /** Stored Events by name: what `read` answers after a scripted AlreadyExists. */
  readonly stored = new Map<string, EventCount>();
  private readonly clock: FakeClock;
  private readonly scripted: Answer[] = [];
  /** While set, every call waits for it. */
  hold: Promise<void> | null = null;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  /** The next calls answer with these, in order. */
  script(...answers: Answer[]): void {
    this.scripted.push(...answers);
  }

  async create(event: CoreEvent, lastDropMs: number): Promise<void> {
    await this.answer({
      verb: 'create',
      name: event.metadata.name,
      count: event.count,
      message: event.message,
    });
    this.stored.set(event.metadata.name, { count: event.count, lastDropMs });
  }

  async read(_namespace: string, name: string): Promise<EventCount> {
    await this.answer({ verb: 'get', name, count: 0, message: undefined });
    return this.stored.get(name) ?? { count: 0, lastDropMs: Number.NEGATIVE_INFINITY };
  }

  async patch(_namespace: string, name: string, counted: EventCount, message?: string): Promise<void> {
    await this.answer({ verb: 'patch', name, count: counted.count, message });
    this.stored.set(name, counted);
  }

  verbs(): string[] {
    return this.calls.map((call) => call.verb);
  }

  private async answer(call: Omit<Call, 'at'>): Promise<void> {
    this.calls.push({ ...call, at: this.clock.now() });
    const answer = this.scripted.shift();
    if (this.hold !== null) await this.hold;
    if (answer !== undefined) await answer();
  }
}

/** An API error as @kubernetes/client-node throws it. */
export function httpError(code: number, body: object = {}, headers: Record<string, string> = {}): Answer {
  return () => Promise.reject(new ApiException(code, `HTTP ${code}`, JSON.stringify(body), headers));
}

export const alreadyExists = httpError(409, { reason: 'AlreadyExists' });

/** Wall time the fake clock starts at: drops are dated against it. */
export const T = Date.parse('2026-12-05T10:00:00Z');

export interface Rig {
  clock: FakeClock;
  api: FakeApi;
  writer: EventWriter;
  metrics: Metrics;
  logs: { level: number; msg: string }[];
}

/** A writer on a fake clock and API; its wall clock is T plus the fake time. */
export function rig(env: Record<string, string> = {}): Rig {
  const clock = new FakeClock();
  const api = new FakeApi(clock);
  const metrics = new Metrics();
  const logs: Rig['logs'] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const writerConfig: WriterConfig = config(env);
  const writer = new EventWriter({
    api,
    config: writerConfig,
    metrics,
    log,
    clock,
    now: () => T + clock.now(),
  });
  return { clock, api, writer, metrics, logs };
}

export function podNamed(name: string): PodRef {
  return {
    namespace: 'default',
    name,
    uid: `uid-${name}`,
    nodeName: 'node-a',
    hostNetwork: false,
    label: null,
    ips: [],
  };
}

/** A send side of `pod` towards `peer`, at wall time `time`. */
export function side(pod: PodRef, peer: string, time = T, combined = false): EventIntent {
  const message = `Packet dropped when sending traffic to ${peer} on port 80/TCP`;
  return {
    pod,
    direction: 'send',
    message: combined ? `${message} (${time})` : message,
    subject: message,
    combined,
    related: undefined,
    time,
    host: 'node-a',
    drop: drop({ time }),
  };
}
