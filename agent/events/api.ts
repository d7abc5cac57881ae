import {
  CoreV1Api,
  type CoreV1Event,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
} from '@kubernetes/client-node';
import { requestSignal } from '../kube/client.ts';
import { type ApiFailure, type ApiFailureReason, classifyApiError } from '../kube/errors.ts';
import { type CoreEvent, eventSeries, rfc3339 } from './event.ts';

/**
 * The exact log time (epoch ms) of the last drop an Event counts. lastTimestamp keeps whole seconds only,
 * too coarse to tell which re-read drops a restarted agent already counted.
 */
export const LAST_DROP_ANNOTATION = 'kube-iptables-tailer/last-drop-ms';

/** RBAC verbs, as a ClusterRole names them. */
export type Verb = 'create' | 'get' | 'patch';

/** What a stored Event counts: how many drops, up to which drop's log time (epoch ms). */
export interface EventCount {
  count: number;
  lastDropMs: number;
}

/** The three calls the event store makes; the writer's queueing knows nothing else of the API. */
export interface EventApi {
  create(event: CoreEvent, lastDropMs: number): Promise<void>;
  read(namespace: string, name: string): Promise<EventCount>;
  /**
   * Sets count, series, lastTimestamp and the last-drop annotation (and the message, when given), leaving the
   * rest as stored.
   */
  patch(namespace: string, name: string, counted: EventCount, message?: string): Promise<void>;
}

/**
 * - not_found, already_exists: answers the writer acts on (re-create; reconcile with the stored Event);
 * - forbidden: RBAC denies the verb, retrying cannot help;
 * - rejected: the API refuses this Event (invalid, namespace terminating, ...), retrying cannot help;
 * - retry: the API is unreachable, overloaded or failing; the same write may succeed later.
 */
export type FailureKind = 'not_found' | 'already_exists' | 'forbidden' | 'rejected' | 'retry';

/** A failed call, reduced to what is safe to log: never headers, never the request. */
export class EventApiError extends Error {
  readonly verb: Verb;
  readonly kind: FailureKind;
  /** Metric label: a small fixed set. */
  readonly reason: ApiFailureReason;
  /** HTTP status, or null when no response came. */
  readonly status: number | null;
  /** The wait the server asked for, uncapped: the drops' expiry bounds every retry anyway. */
  readonly retryAfterMs: number | null;

  constructor(verb: Verb, failure: ApiFailure, detail: string) {
    super(detail);
    this.name = 'EventApiError';
    this.verb = verb;
    this.kind = kindOf(failure);
    this.reason = failure.reason;
    this.status = failure.status;
    this.retryAfterMs = failure.retryAfterMs;
  }
}

function kindOf(failure: ApiFailure): FailureKind {
  const { reason } = failure;
  if (reason === 'not_found' || reason === 'already_exists' || reason === 'forbidden') return reason;
  return failure.retryable ? 'retry' : 'rejected';
}

/**
 * The server's message, or what happened when no answer came: a network error by its code only, since
 * its message names the URL.
 */
function detailOf(failure: ApiFailure, err: unknown): string {
  if (failure.status !== null) return failure.serverMessage ?? `HTTP ${failure.status}`;
  if (failure.reason === 'timeout') return 'request timed out';
  return failure.code ?? (err instanceof Error ? err.name : 'unknown error');
}

/** Anything a call may throw, classified (once). */
export function toEventApiError(verb: Verb, err: unknown): EventApiError {
  if (err instanceof EventApiError) return err;
  const failure = classifyApiError(err);
  return new EventApiError(verb, failure, detailOf(failure, err));
}

/**
 * The last drop an Event counts: the annotation this agent's writer sets, or for an Event it did not
 * write, the end of lastTimestamp's second, since every drop within it may be counted already.
 */
function lastDropOf(event: CoreV1Event): number {
  const annotated = Number(event.metadata?.annotations?.[LAST_DROP_ANNOTATION]);
  if (Number.isFinite(annotated)) return annotated;
  const last = event.lastTimestamp?.getTime();
  return last === undefined ? Number.NEGATIVE_INFINITY : last + 999;
}

/** A request that hangs (a black-holed connection) would otherwise hold a write slot forever. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** The EventApi over @kubernetes/client-node's CoreV1Api. */
export function createEventApi(kubeConfig: KubeConfig, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): EventApi {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const options = requestSignal(() => AbortSignal.timeout(timeoutMs));
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch, options);
  const call = async <T>(verb: Verb, request: () => Promise<T>): Promise<T> => {
    try {
      return await request();
    } catch (err) {
      throw toEventApiError(verb, err);
    }
  };
  return {
    async create(event, lastDropMs) {
      const { series, ...rest } = event;
      const body: CoreV1Event = {
        ...rest,
        metadata: { ...event.metadata, annotations: { [LAST_DROP_ANNOTATION]: String(lastDropMs) } },
        firstTimestamp: new Date(event.firstTimestamp),
        lastTimestamp: new Date(event.lastTimestamp),
        // client-node writes a V1MicroTime with the six fraction digits the API requires.
        eventTime: new V1MicroTime(event.eventTime),
        ...(series === undefined
          ? {}
          : { series: { count: series.count, lastObservedTime: new V1MicroTime(series.lastObservedTime) } }),
      };
      await call('create', () =>
        core.createNamespacedEvent({ namespace: event.metadata.namespace, body }, options),
      );
    },
    // An empty merge patch changes nothing and answers the stored Event: reading this way needs only the
    // `patch` verb the agent has anyway, so the ClusterRole stays at create + patch on events.
    async read(namespace, name) {
      const event = await call('patch', () =>
        core.patchNamespacedEvent({ namespace, name, body: {} }, mergePatch),
      );
      return { count: event.count ?? 1, lastDropMs: lastDropOf(event) };
    },
    async patch(namespace, name, counted, message) {
      const series = eventSeries(counted.count, counted.lastDropMs);
      const body = {
        ...(message === undefined ? {} : { message }),
        count: counted.count,
        ...(series === undefined ? {} : { series }),
        lastTimestamp: rfc3339(counted.lastDropMs),
        metadata: { annotations: { [LAST_DROP_ANNOTATION]: String(counted.lastDropMs) } },
      };
      await call('patch', () => core.patchNamespacedEvent({ namespace, name, body }, mergePatch));
    },
  };
}
