/**
 * What every doctor API call shares: a time limit, so doctor never hangs on a black-holed API server, and
 * one printable line describing a failure.
 */

import type { ConfigurationOptions } from '@kubernetes/client-node';
import { requestSignal } from '../../kube/client.ts';
import { classifyApiError, describeApiFailure } from '../../kube/errors.ts';
import { printable } from './census.ts';

const REQUEST_TIMEOUT_MS = 5000;

/** Per-call client options that abort the request (each page, for a list) after REQUEST_TIMEOUT_MS. */
export function timeoutOptions(): ConfigurationOptions {
  return requestSignal(() => AbortSignal.timeout(REQUEST_TIMEOUT_MS));
}

/** One printable line: the HTTP status and the server's message, the time limit, or the network error. */
export function describeError(err: unknown): string {
  const failure = classifyApiError(err);
  if (failure.reason === 'timeout') return `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
  return printable(describeApiFailure(failure));
}
