import type { Occurrence } from './event.ts';

/**
 * Drop times kept per pending Event once the agent knows the Event (it created or read it); beyond that a
 * storm only adds to the count, and only expiry still looks at times. Up to 10,000 pending Events keep
 * them within ~5 MB.
 */
export const MAX_TIMES = 64;
/**
 * Drop times kept per pending Event before then: a restarted agent re-reading lines must tell exactly
 * which drops the Event an earlier run wrote already counts, by time. All of them together are bounded by
 * the drops read within PACKET_DROP_EXPIRATION_MINUTES.
 */
export const MAX_TIMES_UNKNOWN = 10_000;

/**
 * The drops one write carries: the first `timed` times and `untimed` of the untimed drops the tally held
 * when the write started; drops added while it is in flight come after them.
 */
export interface DropBatch extends Occurrence {
  timed: number;
  untimed: number;
}

/**
 * The drops one pending write stands for. Their times let a restarted agent skip drops an Event already
 * counts; past the limit only the number grows, and those untimed drops are taken to be no later than
 * `last` and no earlier than `first`.
 */
export class DropTally {
  private times: number[];
  private untimed = 0;
  private limit = MAX_TIMES_UNKNOWN;
  private firstTime: number;
  private lastTime: number;

  constructor(time: number) {
    this.times = [time];
    this.firstTime = time;
    this.lastTime = time;
  }

  get count(): number {
    return this.times.length + this.untimed;
  }

  get first(): number {
    return this.firstTime;
  }

  get last(): number {
    return this.lastTime;
  }

  add(time: number): void {
    if (this.times.length < this.limit) this.times.push(time);
    else this.untimed++;
    this.firstTime = Math.min(this.firstTime, time);
    this.lastTime = Math.max(this.lastTime, time);
  }

  /**
   * Removes the drops `stale` holds for and returns how many. `stale` must also hold for every time earlier
   * than one it holds for; untimed drops go only when all of them surely are (`last` is stale).
   */
  remove(stale: (time: number) => boolean): number {
    if (!stale(this.firstTime)) return 0;
    const before = this.count;
    this.times = this.times.filter((time) => !stale(time));
    if (stale(this.lastTime)) this.untimed = 0;
    this.recompute();
    return before - this.count;
  }

  /**
   * The Event is known now, so a drop an earlier run counted is refused on arrival: keep only MAX_TIMES
   * times (the oldest), the rest counted untimed. Never while a write is in flight (forget counts on them).
   */
  bound(): void {
    this.limit = MAX_TIMES;
    if (this.times.length <= MAX_TIMES) return;
    this.untimed += this.times.length - MAX_TIMES;
    this.times.length = MAX_TIMES;
  }

  batch(): DropBatch {
    return {
      timed: this.times.length,
      untimed: this.untimed,
      count: this.count,
      first: this.firstTime,
      last: this.lastTime,
    };
  }

  /** Forgets the drops a finished write took care of; those added while it was in flight stay. */
  forget(done: DropBatch): void {
    this.times.splice(0, done.timed);
    this.untimed -= done.untimed;
    this.recompute();
  }

  private recompute(): void {
    if (this.untimed > 0 || this.times.length === 0) return;
    this.firstTime = Math.min(...this.times);
    this.lastTime = Math.max(...this.times);
  }
}
