/**
 * What went wrong with an API call, for every caller (list-watch, the Event writer, doctor): the client
 * throws ApiException for an answer, a plain Error with `statusCode` for a watch answer, AbortError or
 * TimeoutError when a signal ended the request, and a Node or node-fetch error with a `code` when no
 * answer came.
 */

import { field } from './objects.ts';

/** Metric label of a failure: a small fixed set. */
export type ApiFailureReason =
  | 'not_found'
  | 'already_exists'
  | 'namespace_terminating'
  | 'forbidden'
  | 'unauthorized'
  | 'throttled'
  | 'server_error'
  | 'conflict'
  | 'invalid'
  | `http_${number}`
  | 'timeout'
  | 'network';

export interface ApiFailure {
  /** HTTP status of the answer; null when none came. */
  readonly status: number | null;
  readonly reason: ApiFailureReason;
  /** Whether the same request may succeed later: the server is unreachable, overloaded or failing. */
  readonly retryable: boolean;
  /** The wait the server asked for (Retry-After), as sent: a caller that must bound it caps it itself. */
  readonly retryAfterMs: number | null;
  /** The Status message of the answer, when the server sent one. */
  readonly serverMessage: string | null;
  /** The code of a failure without an answer (ECONNREFUSED, ...). */
  readonly code: string | null;
  /** The thrown error's own message; for a network error it may name the URL, never headers. */
  readonly errorMessage: string;
}

interface Status {
  reason?: unknown;
  message?: unknown;
  details?: { causes?: unknown };
}

/** The Status of an error answer: the client hands the body over as the raw response text. */
function statusOf(body: unknown): Status {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return {};
    }
  }
  return typeof parsed === 'object' && parsed !== null ? (parsed as Status) : {};
}

function causesOf(status: Status): string[] {
  const causes = status.details?.causes;
  return Array.isArray(causes) ? causes.map((cause) => field(cause, 'reason')).filter(isString) : [];
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

/** Retry-After is either delay-seconds or an HTTP date; one in the past asks for no wait. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (value === undefined || value.trim() === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * ApiException carries the status in `code`, a watch answer in `statusCode`. A DOMException has a numeric
 * `code` too (a legacy error number), so signals are told apart before this is asked.
 */
function statusCodeOf(err: unknown): number | null {
  const status = field(err, 'statusCode') ?? field(err, 'code');
  return typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599
    ? status
    : null;
}

function reasonOf(status: number, body: Status): { reason: ApiFailureReason; retryable: boolean } {
  const permanent = (reason: ApiFailureReason) => ({ reason, retryable: false });
  const transient = (reason: ApiFailureReason) => ({ reason, retryable: true });
  if (status === 404) return permanent('not_found');
  if (status === 409 && body.reason === 'AlreadyExists') return permanent('already_exists');
  if (causesOf(body).includes('NamespaceTerminating')) return permanent('namespace_terminating');
  if (status === 403) return permanent('forbidden');
  if (status === 429) return transient('throttled');
  if (status >= 500) return transient('server_error');
  // A rotated ServiceAccount token is re-read on the next call.
  if (status === 401) return transient('unauthorized');
  // 408 and a 409 Conflict (a concurrent update) pass.
  if (status === 408 || status === 409) return transient('conflict');
  return permanent(status === 400 || status === 422 ? 'invalid' : `http_${status}`);
}

/** Anything an API call may throw, classified. */
export function classifyApiError(err: unknown, now = Date.now()): ApiFailure {
  const name = field(err, 'name');
  const message = field(err, 'message');
  const errorMessage = isString(message) ? message : String(err);
  const none = { status: null, retryable: true, retryAfterMs: null, serverMessage: null, errorMessage };
  if (name === 'AbortError' || name === 'TimeoutError') return { ...none, reason: 'timeout', code: null };
  const status = statusCodeOf(err);
  if (status === null) {
    const code = field(err, 'code');
    return { ...none, reason: 'network', code: isString(code) ? code : null };
  }
  const body = statusOf(field(err, 'body'));
  const header = field(field(err, 'headers'), 'retry-after');
  return {
    status,
    ...reasonOf(status, body),
    retryAfterMs: parseRetryAfter(isString(header) ? header : undefined, now),
    serverMessage: isString(body.message) ? body.message : null,
    code: null,
    errorMessage,
  };
}

/** One line for logs and reports: the status and the server's message, or the error code and message. */
export function describeApiFailure(failure: ApiFailure): string {
  if (failure.status !== null) {
    const message = failure.serverMessage?.split('\n')[0];
    return message ? `HTTP ${failure.status}: ${message}` : `HTTP ${failure.status}`;
  }
  const message = failure.errorMessage.split('\n')[0] ?? '';
  const { code } = failure;
  return code !== null && !message.includes(code) ? `${code}: ${message}` : message;
}
