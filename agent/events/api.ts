import {
  ApiException,
  CoreV1Api,
  type CoreV1Event,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { requestSignal } from '../kube/client.ts';
import { type CoreEvent, rfc3339 } from './event.ts';

/**
 * The exact log time (epoch ms) of the last drop an Event counts. lastTimestamp keeps whole seconds only,
 * too coarse to tell which re-read drops a restarted agent already counted.
 */
export const LAST_DROP_ANNOTATION = 'kube-iptables-tailer/last-drop-ms';

/** RBAC verbs, as a ClusterRole names them. */
export type Verb = 'create' | 'get' | 'patch';

/** What the writer needs of an Event: how many drops it counts, up to which drop time. */
export interface EventTally {
  count: number;
  lastDropMs: number;
}

/** The three calls the event store makes; the writer's queueing knows nothing else of the API. */
export interface EventApi {
  create(event: CoreEvent, lastDropMs: number): Promise<void>;
  read(namespace: string, name: string): Promise<EventTally>;
  /** Sets count, lastTimestamp and the last-drop annotation (and the message, when given), leaving the rest as stored. */
  patch(namespace: string, name: string, tally: EventTally, message?: string): Promise<void>;
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
  readonly reason: string;
  /** HTTP status, or null when no response came. */
  readonly status: number | null;
  readonly retryAfterMs: number | null;

  constructor(
    verb: Verb,
    kind: FailureKind,
    reason: string,
    status: number | null,
    detail: string,
    retryAfterMs: number | null = null,
  ) {
    super(detail);
    this.name = 'EventApiError';
    this.verb = verb;
    this.kind = kind;
    this.reason = reason;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

interface Status {
  reason?: string;
  message?: string;
  details?: { causes?: { reason?: string }[] };
}

/** The client hands the error body over as the raw response text. */
function statusOf(body: unknown): Status {
  if (typeof body === 'object' && body !== null) return body as Status;
  if (typeof body !== 'string') return {};
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Status) : {};
  } catch {
    return {};
  }
}

/** Retry-After is either delay-seconds or an HTTP date. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | null {
  if (value === undefined || value.trim() === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function fromResponse(verb: Verb, err: ApiException<unknown>): EventApiError {
  const status = statusOf(err.body);
  const detail = status.message ?? `HTTP ${err.code}`;
  const make = (kind: FailureKind, reason: string) =>
    new EventApiError(verb, kind, reason, err.code, detail, retryAfterMs(err.headers['retry-after']));
  const code = err.code;
  if (code === 404) return make('not_found', 'not_found');
  if (code === 409 && status.reason === 'AlreadyExists') return make('already_exists', 'already_exists');
  if (status.details?.causes?.some((cause) => cause.reason === 'NamespaceTerminating')) {
    return make('rejected', 'namespace_terminating');
  }
  if (code === 403) return make('forbidden', 'forbidden');
  if (code === 429) return make('retry', 'throttled');
  if (code >= 500) return make('retry', 'server_error');
  // 401: a rotated ServiceAccount token is re-read on the next call. 408 and 409 Conflict are transient.
  if (code === 401) return make('retry', 'unauthorized');
  if (code === 408 || code === 409) return make('retry', 'conflict');
  return make('rejected', code === 422 || code === 400 ? 'invalid' : `http_${code}`);
}

/** Anything a call may throw, classified (once). Network errors carry only their code: no URL, no headers. */
export function toEventApiError(verb: Verb, err: unknown): EventApiError {
  if (err instanceof EventApiError) return err;
  if (err instanceof ApiException) return fromResponse(verb, err);
  if (err instanceof Error && err.name === 'AbortError') {
    return new EventApiError(verb, 'retry', 'timeout', null, 'request timed out');
  }
  const code = (err as { code?: unknown } | null)?.code;
  const detail = typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown error';
  return new EventApiError(verb, 'retry', 'network', null, detail);
}

/** A request that hangs (a black-holed connection) would otherwise hold a write slot forever. */
function lastDropOf(event: CoreV1Event): number {
  const annotated = Number(event.metadata?.annotations?.[LAST_DROP_ANNOTATION]);
  if (Number.isFinite(annotated)) return annotated;
  // Not written by this agent's writer: every drop within lastTimestamp's second may be counted already.
  const last = event.lastTimestamp?.getTime();
  return last === undefined ? Number.NEGATIVE_INFINITY : last + 999;
}

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
      const body: CoreV1Event = {
        ...event,
        metadata: { ...event.metadata, annotations: { [LAST_DROP_ANNOTATION]: String(lastDropMs) } },
        firstTimestamp: new Date(event.firstTimestamp),
        lastTimestamp: new Date(event.lastTimestamp),
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
    async patch(namespace, name, tally, message) {
      const body = {
        ...(message === undefined ? {} : { message }),
        count: tally.count,
        lastTimestamp: rfc3339(tally.lastDropMs),
        metadata: { annotations: { [LAST_DROP_ANNOTATION]: String(tally.lastDropMs) } },
      };
      await call('patch', () => core.patchNamespacedEvent({ namespace, name, body }, mergePatch));
    },
  };
}
