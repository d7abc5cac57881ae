// The classifier over the errors @kubernetes/client-node and Node really throw, built here as they are;
// events/writer-api.test.ts and tools/doctor/doctor-cli.test.ts show the same against a real API server.

import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { classifyApiError, describeApiFailure, parseRetryAfter } from '../../agent/kube/errors.ts';

const NOW = Date.parse('2026-01-02T03:04:05Z');

function apiError(
  code: number,
  body: object | string = {},
  headers: Record<string, string> = {},
): ApiException<unknown> {
  return new ApiException(
    code,
    `HTTP ${code}`,
    typeof body === 'string' ? body : JSON.stringify(body),
    headers,
  );
}

/** A node-fetch FetchError as the client throws it when no connection is made. */
function networkError(code: string): Error {
  return Object.assign(new Error(`request to https://10.0.0.1:6443/api failed, reason: connect ${code}`), {
    code,
    errno: code,
    type: 'system',
  });
}

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP dates against the clock it is given', () => {
    expect(parseRetryAfter('3', NOW)).toBe(3000);
    expect(parseRetryAfter('0.5', NOW)).toBe(500);
    expect(parseRetryAfter('Fri, 02 Jan 2026 03:04:10 GMT', NOW)).toBe(5000);
    expect(parseRetryAfter('Fri, 02 Jan 2026 03:04:10 GMT', NOW + 2000)).toBe(3000);
  });

  it('asks no wait for a date already past or a negative delay', () => {
    expect(parseRetryAfter('Fri, 02 Jan 2026 03:04:00 GMT', NOW)).toBe(0);
    expect(parseRetryAfter('-5', NOW)).toBe(0);
  });

  it('reads nothing from a missing, blank or unreadable header', () => {
    expect(parseRetryAfter(undefined, NOW)).toBeNull();
    expect(parseRetryAfter('  ', NOW)).toBeNull();
    expect(parseRetryAfter('soon', NOW)).toBeNull();
  });
});

describe('classifyApiError', () => {
  it('tells answers the caller acts on from permanent and retryable ones', () => {
    const cases: [ApiException<unknown>, string, boolean][] = [
      [apiError(404), 'not_found', false],
      [apiError(409, { reason: 'AlreadyExists' }), 'already_exists', false],
      [apiError(409, { reason: 'Conflict' }), 'conflict', true],
      [
        apiError(403, { details: { causes: [{ reason: 'NamespaceTerminating' }] } }),
        'namespace_terminating',
        false,
      ],
      [apiError(403, { reason: 'Forbidden' }), 'forbidden', false],
      [apiError(429), 'throttled', true],
      [apiError(500), 'server_error', true],
      [apiError(503), 'server_error', true],
      [apiError(401), 'unauthorized', true],
      [apiError(408), 'conflict', true],
      [apiError(422), 'invalid', false],
      [apiError(400), 'invalid', false],
      [apiError(410), 'http_410', false],
      [apiError(413), 'http_413', false],
    ];
    for (const [error, reason, retryable] of cases) {
      expect(classifyApiError(error, NOW), `HTTP ${error.code}`).toMatchObject({
        status: error.code,
        reason,
        retryable,
      });
    }
  });

  it('keeps the Status message, from a text or an object body', () => {
    const text = classifyApiError(apiError(422, { message: 'involvedObject.namespace: Invalid value' }), NOW);
    expect(text.serverMessage).toBe('involvedObject.namespace: Invalid value');
    const object = new ApiException(403, 'Forbidden', { message: 'cannot create resource "events"' }, {});
    expect(classifyApiError(object, NOW).serverMessage).toBe('cannot create resource "events"');
    expect(classifyApiError(apiError(502, '<html>bad gateway</html>'), NOW)).toMatchObject({
      status: 502,
      reason: 'server_error',
      serverMessage: null,
    });
  });

  it('reads Retry-After as sent, uncapped, and only from an answer', () => {
    expect(classifyApiError(apiError(429, {}, { 'retry-after': '3' }), NOW).retryAfterMs).toBe(3000);
    expect(classifyApiError(apiError(503, {}, { 'retry-after': '100000' }), NOW).retryAfterMs).toBe(
      100_000_000,
    );
    expect(classifyApiError(apiError(429), NOW).retryAfterMs).toBeNull();
    expect(classifyApiError(networkError('ECONNRESET'), NOW).retryAfterMs).toBeNull();
  });

  it('reads the status of a watch answer, which is a plain Error with statusCode', () => {
    const watch = Object.assign(new Error('Gone'), { statusCode: 410 });
    expect(classifyApiError(watch, NOW)).toMatchObject({ status: 410, reason: 'http_410' });
    const status = { kind: 'Status', code: 500, message: 'etcdserver: leader changed' };
    const event = Object.assign(new Error(status.message), { statusCode: 500, body: status });
    expect(classifyApiError(event, NOW)).toMatchObject({
      status: 500,
      retryable: true,
      serverMessage: 'etcdserver: leader changed',
    });
  });

  it('takes an aborted or timed-out request for a retryable timeout, not for its DOMException code', () => {
    for (const name of ['AbortError', 'TimeoutError']) {
      const error = new DOMException('The operation was aborted', name);
      expect(typeof (error as unknown as { code: unknown }).code).toBe('number');
      expect(classifyApiError(error, NOW)).toMatchObject({
        status: null,
        reason: 'timeout',
        retryable: true,
      });
    }
  });

  it('takes any other failure for a retryable network error, keeping its code', () => {
    expect(classifyApiError(networkError('ECONNREFUSED'), NOW)).toMatchObject({
      status: null,
      reason: 'network',
      retryable: true,
      code: 'ECONNREFUSED',
    });
    expect(classifyApiError('thrown text', NOW)).toMatchObject({
      reason: 'network',
      code: null,
      errorMessage: 'thrown text',
    });
    expect(classifyApiError(null, NOW)).toMatchObject({
      reason: 'network',
      code: null,
      errorMessage: 'null',
    });
  });
});

describe('describeApiFailure', () => {
  const line = (error: unknown) => describeApiFailure(classifyApiError(error, NOW));

  it('gives the status with the first line of the server message', () => {
    expect(line(apiError(403, { message: 'pods is forbidden\nmore' }))).toBe('HTTP 403: pods is forbidden');
    expect(line(apiError(502, '<html>'))).toBe('HTTP 502');
  });

  it('gives the code before a message that does not name it', () => {
    expect(line(networkError('ECONNREFUSED'))).toBe(
      'request to https://10.0.0.1:6443/api failed, reason: connect ECONNREFUSED',
    );
    expect(line(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(
      'ECONNRESET: socket hang up',
    );
    expect(line(new Error('first\nsecond'))).toBe('first');
  });
});
