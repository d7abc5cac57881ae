import { setTimeout as sleep } from 'node:timers/promises';
import { type KubeConfig, Watch } from '@kubernetes/client-node';
import { type Backoff, backoffDelay, retryDelay } from '../backoff.ts';
import type { Logger } from '../log.ts';
import { requestSignal } from './client.ts';
import { type ApiFailure, classifyApiError, describeApiFailure } from './errors.ts';
import { field, isRecord } from './objects.ts';
import { type ListCall, type Listed, listAll } from './pages.ts';

/** The consumer's index. `replace` is a full replacement: whatever it held before is gone. */
export interface ListWatchSink<T> {
  replace(items: T[]): void;
  upsert(item: T): void;
  remove(item: T): void;
}

export interface ListWatchCounters {
  /** Successful full lists, the first one included. */
  lists: number;
  /** Full lists after the first: the watch could not resume (410 Gone) or the sink failed. */
  relists: number;
  /** Watch requests started. */
  watches: number;
  /** Retries after a failed list or watch (server unreachable, 5xx, 429, ...). */
  reconnects: number;
  /** ADDED, MODIFIED, DELETED and BOOKMARK events received. */
  events: number;
}

export interface ListWatchTuning {
  /** Objects per list page. */
  pageSize?: number;
  /** Each watch asks the server to end it after a random time in this range, so nodes reconnect apart. */
  watchTimeoutSeconds?: { min: number; max: number };
  /** Waits between retries; each is between half and all of the step (equal jitter). */
  backoff?: Pick<Backoff, 'initialMs' | 'maxMs'>;
  /** Gives up on one list page after this long. */
  listTimeoutMs?: number;
  /** Called on every counter increment, for metrics. */
  onCount?: (counter: keyof ListWatchCounters) => void;
}

export interface ListWatchOptions<T> extends ListWatchTuning {
  /** Names the resource in logs, e.g. 'pods'. */
  resource: string;
  kubeConfig: KubeConfig;
  /** Watch path serving the same objects as `list`, e.g. /api/v1/pods. */
  path: string;
  /** Asked with `fieldSelector` added, so list and watch always agree. */
  list: ListCall;
  fieldSelector?: string;
  /** Turns an API object (list item or watch event object) into what the sink keeps; null skips it. */
  convert(object: unknown): T | null;
  sink: ListWatchSink<T>;
  logger: Logger;
}

const DEFAULT_BACKOFF: Pick<Backoff, 'initialMs' | 'maxMs'> = { initialMs: 500, maxMs: 30_000 };
/** Half of every wait is guaranteed, half is random, so the nodes of a cluster do not retry together. */
const EQUAL_JITTER = 0.5;
/** Retry-After beyond this is taken for a misconfigured server: the wait is cut to it rather than obeyed. */
const RETRY_AFTER_CAP_MS = 5 * 60_000;
/**
 * A watch that ends within this time of connecting, having delivered nothing, did not prove the server healthy.
 * Capped at half the requested timeout: the server starts that clock before the client sees the response.
 */
const HEALTHY_WATCH_MS = 1000;
/**
 * How long a watch must have been open before the index counts as current: the server sends what changed
 * since the resumed resourceVersion right after the response starts, so a second covers that backlog.
 */
export const CATCH_UP_MS = 1000;
/** The server ends a watch at timeoutSeconds; one still open this much later is on a dead connection. */
const WATCH_GRACE_SECONDS = 30;

type Step = 'list' | 'watch';

type Outcome =
  | { kind: 'listed' }
  /** The server ended a watch that did useful work (timeoutSeconds): resume from the last resourceVersion. */
  | { kind: 'ended' }
  /** The resourceVersion is too old (410 Gone) or the sink failed: only a full list can recover. */
  | { kind: 'relist'; reason: string; progressed: boolean }
  | { kind: 'failed'; failure: ApiFailure }
  | { kind: 'stopped' };

function resourceVersionOf(object: unknown): string | undefined {
  const rv = field(field(object, 'metadata'), 'resourceVersion');
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}

/** The Retry-After of a failed list (watch answers carry no headers), cut to RETRY_AFTER_CAP_MS; null if none. */
export function cappedRetryAfterMs(failure: ApiFailure): number | null {
  return failure.retryAfterMs === null ? null : Math.min(failure.retryAfterMs, RETRY_AFTER_CAP_MS);
}

/** What the index threw, for the log. */
function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A failed list or watch request, or an index that threw: every one is retried. */
function failed(error: unknown): Outcome {
  return { kind: 'failed', failure: classifyApiError(error) };
}

/** An ERROR watch event carries a Status: 410 means the resourceVersion is too old to resume from. */
function watchError(status: unknown, progressed: boolean): Outcome {
  const code = isRecord(status) ? status.code : undefined;
  if (code === 410) return { kind: 'relist', reason: '410 Gone', progressed };
  const message =
    isRecord(status) && typeof status.message === 'string' ? status.message : 'watch ERROR event';
  return failed(Object.assign(new Error(message), { statusCode: code, body: status }));
}

function randomBetween(min: number, max: number): number {
  return Math.round(min + Math.random() * (max - min));
}

/**
 * The informer pattern: a paginated list replaces the sink's content, then a watch from the list's
 * resourceVersion streams changes. A watch the server ends is resumed from the last resourceVersion seen
 * (bookmarks keep it fresh); only 410 Gone forces a new list. Failures are retried forever with backoff,
 * because a DaemonSet agent has nothing better to do than wait for its API server.
 */
export class ListWatch<T> {
  private readonly options: ListWatchOptions<T>;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly watcher: Watch;
  private readonly abort = new AbortController();
  /** Successful full lists: every one after the first is a relist. */
  private lists = 0;
  private readonly syncWaiters = new Set<() => void>();
  private resourceVersion = '';
  /** performance.now() when the open watch connected; undefined while none is open. */
  private watchOpenSince: number | undefined;
  private failures = 0;
  private failing = false;
  private loop: Promise<void> | undefined;

  constructor(options: ListWatchOptions<T>) {
    this.options = options;
    this.log = options.logger.child({ watch: options.resource });
    this.backoff = { ...(options.backoff ?? DEFAULT_BACKOFF), jitter: EQUAL_JITTER };
    this.watcher = new Watch(options.kubeConfig);
  }

  start(): void {
    if (this.loop !== undefined) throw new Error(`${this.options.resource} list-watch already started`);
    this.loop = this.run();
  }

  /** True once the first full list has reached the sink. */
  synced(): boolean {
    return this.lists > 0;
  }

  /**
   * True while a watch has been open long enough to have delivered what changed before it opened: the sink
   * then reflects the API server up to a moment ago. False before the first sync, while reconnecting or
   * relisting, and in the first CATCH_UP_MS of every watch.
   */
  current(now = performance.now()): boolean {
    return this.watchOpenSince !== undefined && now - this.watchOpenSince >= CATCH_UP_MS;
  }

  /** Resolves after the first full list; rejects when `signal` aborts or the loop is stopped first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced()) return Promise.resolve();
    const signals = signal === undefined ? [this.abort.signal] : [this.abort.signal, signal];
    const stop = AbortSignal.any(signals);
    const notSynced = (): Error =>
      new Error(`${this.options.resource} not synced: list-watch stopped or wait aborted`);
    if (stop.aborted) return Promise.reject(notSynced());
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.syncWaiters.delete(done);
        stop.removeEventListener('abort', aborted);
        resolve();
      };
      const aborted = (): void => {
        this.syncWaiters.delete(done);
        reject(notSynced());
      };
      this.syncWaiters.add(done);
      stop.addEventListener('abort', aborted, { once: true });
    });
  }

  /** Cancels the list or watch in flight and any backoff wait; resolves once the loop has exited. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private count(counter: keyof ListWatchCounters): void {
    this.options.onCount?.(counter);
  }

  private async run(): Promise<void> {
    let step: Step = 'list';
    while (!this.abort.signal.aborted) {
      const outcome = step === 'list' ? await this.listAll() : await this.watchOnce();
      if (outcome.kind === 'stopped') return;
      const next = this.next(step, outcome);
      step = next.step;
      if (next.delayMs > 0) {
        try {
          await sleep(next.delayMs, undefined, { signal: this.abort.signal });
        } catch {
          return;
        }
      }
    }
  }

  /** Decides the next step and how long to wait before it; `failures` changes only here (and in relistDelay). */
  private next(step: Step, outcome: Exclude<Outcome, { kind: 'stopped' }>): { step: Step; delayMs: number } {
    switch (outcome.kind) {
      case 'listed':
        return { step: 'watch', delayMs: 0 };
      case 'ended':
        this.failures = 0;
        return { step: 'watch', delayMs: 0 };
      case 'relist':
        this.log.info({ reason: outcome.reason }, `relisting ${this.options.resource}`);
        return { step: 'list', delayMs: this.relistDelay(outcome.progressed) };
      case 'failed': {
        this.failures++;
        this.count('reconnects');
        const delayMs = retryDelay(this.failures, this.backoff, cappedRetryAfterMs(outcome.failure));
        this.markFailing(step, outcome.failure, delayMs);
        return { step, delayMs };
      }
    }
  }

  /** A relist right after a watch that did useful work is immediate; otherwise it backs off like a failure. */
  private relistDelay(progressed: boolean): number {
    if (progressed) {
      this.failures = 0;
      return 0;
    }
    this.failures++;
    return backoffDelay(this.failures, this.backoff);
  }

  /** Warns once when the API server becomes unusable; each further retry only at debug, to avoid log storms. */
  private markFailing(step: Step, failure: ApiFailure, delayMs: number): void {
    const details = {
      step,
      error: describeApiFailure(failure),
      attempt: this.failures,
      retryInMs: Math.round(delayMs),
    };
    if (this.failing) {
      this.log.debug(details, `${this.options.resource} ${step} failed again`);
      return;
    }
    this.failing = true;
    this.log.warn(details, `${this.options.resource} ${step} failed, retrying with backoff`);
  }

  private markHealthy(): void {
    if (!this.failing) return;
    this.failing = false;
    this.log.info({ attempts: this.failures }, `${this.options.resource} API server reachable again`);
  }

  private async listAll(): Promise<Outcome> {
    const { list, fieldSelector, pageSize, listTimeoutMs = 60_000, convert, sink } = this.options;
    const started = performance.now();
    const options = requestSignal(() =>
      AbortSignal.any([this.abort.signal, AbortSignal.timeout(listTimeoutMs)]),
    );
    let listed: Listed<T>;
    try {
      listed = await listAll(list, convert, { options, fieldSelector, pageSize });
    } catch (error) {
      if (this.abort.signal.aborted) return { kind: 'stopped' };
      return failed(error);
    }
    try {
      sink.replace(listed.items);
    } catch (error) {
      this.log.error({ error: messageOf(error) }, `${this.options.resource} index rejected the list`);
      return failed(error);
    }
    this.resourceVersion = listed.resourceVersion;
    this.markHealthy();
    this.count('lists');
    if (++this.lists > 1) this.count('relists');
    else this.announceSync(listed.items.length, listed.pages, performance.now() - started);
    return { kind: 'listed' };
  }

  private announceSync(items: number, pages: number, ms: number): void {
    this.log.info({ items, pages, ms: Math.round(ms) }, `${this.options.resource} synced`);
    for (const resolve of [...this.syncWaiters]) resolve();
  }

  private watchOnce(): Promise<Outcome> {
    const { path, fieldSelector, watchTimeoutSeconds = { min: 300, max: 600 } } = this.options;
    const timeoutSeconds = randomBetween(watchTimeoutSeconds.min, watchTimeoutSeconds.max);
    const query = {
      allowWatchBookmarks: true,
      resourceVersion: this.resourceVersion,
      timeoutSeconds,
      fieldSelector,
    };
    this.count('watches');
    this.log.debug({ resourceVersion: this.resourceVersion, timeoutSeconds }, 'watch starting');

    return new Promise((resolve) => {
      let settled = false;
      let controller: AbortController | undefined;
      let connectedAt: number | undefined;
      let events = 0;
      const healthyMs = Math.min(HEALTHY_WATCH_MS, (timeoutSeconds * 1000) / 2);
      const progressed = (): boolean =>
        events > 0 || (connectedAt !== undefined && performance.now() - connectedAt >= healthyMs);
      const finish = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        this.watchOpenSince = undefined;
        clearTimeout(watchdog);
        this.abort.signal.removeEventListener('abort', stopped);
        controller?.abort();
        resolve(outcome);
      };
      const stopped = (): void => finish({ kind: 'stopped' });
      const watchdog = setTimeout(
        () => finish(failed(new Error('watch outlived its timeout'))),
        (timeoutSeconds + WATCH_GRACE_SECONDS) * 1000,
      );
      this.abort.signal.addEventListener('abort', stopped, { once: true });

      const onEvent = (phase: string, object: unknown): void => {
        if (settled) return;
        if (phase === 'ERROR') finish(watchError(object, progressed()));
        else if (this.apply(phase, object)) events++;
        else finish({ kind: 'relist', reason: 'index rejected a change', progressed: false });
      };
      const onDone = (error: unknown): void => {
        if (error === null || error === undefined)
          finish(
            progressed() ? { kind: 'ended' } : failed(new Error('watch ended without delivering anything')),
          );
        else if (classifyApiError(error).status === 410)
          finish({ kind: 'relist', reason: '410 Gone', progressed: false });
        else finish(failed(error));
      };
      const connected = (started: AbortController): void => {
        controller = started;
        // watch() resolves only once the response has begun (or after onDone on a failure), so a watch that
        // was finished meanwhile, by stop() or the watchdog, can only be cancelled now.
        if (settled) {
          started.abort();
          return;
        }
        connectedAt = performance.now();
        this.watchOpenSince = connectedAt;
        this.markHealthy();
      };
      this.watcher
        .watch(path, query, (phase: string, object: unknown) => onEvent(phase, object), onDone)
        .then(connected, (error: unknown) => finish(failed(error)));
    });
  }

  /** Applies one ADDED/MODIFIED/DELETED/BOOKMARK event; false when the sink threw and only a relist can repair it. */
  private apply(phase: string, object: unknown): boolean {
    try {
      this.applyChange(phase, object);
    } catch (error) {
      this.log.error({ error: messageOf(error), phase }, `${this.options.resource} index rejected a change`);
      return false;
    }
    this.resourceVersion = resourceVersionOf(object) ?? this.resourceVersion;
    this.count('events');
    return true;
  }

  /** Bookmarks carry nothing but a resourceVersion; unknown phases are ignored the same way. */
  private applyChange(phase: string, object: unknown): void {
    if (phase !== 'ADDED' && phase !== 'MODIFIED' && phase !== 'DELETED') return;
    const item = this.options.convert(object);
    if (item === null) {
      this.log.warn(
        { phase, resourceVersion: resourceVersionOf(object) },
        'skipped an object it cannot read',
      );
    } else if (phase === 'DELETED') {
      this.options.sink.remove(item);
    } else {
      this.options.sink.upsert(item);
    }
  }
}
