/**
 * What every doctor API call shares: a time limit, so doctor never hangs on a black-holed API server, and
 * one printable line describing a failure.
 */

import { ApiException, type ConfigurationOptions } from '@kubernetes/client-node';
import { requestSignal } from '../../kube/client.ts';
import { printable } from './census.ts';

export const REQUEST_TIMEOUT_MS = 5000;

/** Per-call client options that abort the request (each page, for a list) after `ms`. */
export function timeoutOptions(ms = REQUEST_TIMEOUT_MS): ConfigurationOptions {
  return requestSignal(() => AbortSignal.timeout(ms));
}

/** HTTP status of a failed call, or null when no response came. */
export function httpStatus(err: unknown): number | null {
  return err instanceof ApiException ? err.code : null;
}

/** The Status message of an API error body (the client hands it over as text). */
function statusMessage(body: unknown): string | null {
  if (typeof body !== 'string') return null;
  try {
    const status: unknown = JSON.parse(body);
    const message = typeof status === 'object' && status !== null ? Reflect.get(status, 'message') : null;
    return typeof message === 'string' ? message : null;
  } catch {
    return null;
  }
}

/** One printable line: the HTTP status and the server's message, or the network error's code. */
export function describeError(err: unknown, timeoutMs = REQUEST_TIMEOUT_MS): string {
  if (err instanceof ApiException) {
    const message = statusMessage(err.body);
    return printable(message === null ? `HTTP ${err.code}` : `HTTP ${err.code}: ${message}`);
  }
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) {
    return `no answer within ${timeoutMs / 1000} s`;
  }
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return printable(typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message);
}
