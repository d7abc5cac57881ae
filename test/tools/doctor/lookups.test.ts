import { createServer, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { LookupOutcome } from '../../../agent/locator/pod-lookup.ts';
import { Metrics } from '../../../agent/metrics.ts';
import { parseExposition, parseSample } from '../../../agent/tools/doctor/exposition.ts';
import {
  checkLookups,
  hitRate,
  LOOKUPS_METRIC,
  lookupFigures,
  metricsUrl,
} from '../../../agent/tools/doctor/lookups-check.ts';
import type { WatchReport } from '../../../agent/tools/doctor/types.ts';
import { freePort } from '../../e2e/agent-process.ts';

const NODE_A: WatchReport = { scope: 'node', nodeName: 'node-a' };

function outcomes(counts: Partial<Record<LookupOutcome, number>>): Record<LookupOutcome, number> {
  return {
    hit: 0,
    miss: 0,
    found: 0,
    not_found: 0,
    error: 0,
    rate_limited: 0,
    coalesced: 0,
    ...counts,
  };
}

/** The agent's registry with these lookups counted through it, as its /metrics serves it. */
async function agentScrape(counts: Partial<Record<LookupOutcome, number>>, cached = 0): Promise<string> {
  const metrics = new Metrics({ defaultMetrics: true });
  for (const [outcome, count] of Object.entries(counts)) metrics.podLookups.inc({ outcome }, count);
  metrics.podLookupCache.set(cached);
  return metrics.registry.metrics();
}

describe('parseSample', () => {
  it('reads the name, the labels with their escapes undone, and the value', () => {
    const sample = parseSample('packet_drops_count{src="a\\"b\\\\c\\nd",dst="x"} 3');
    expect(sample?.name).toBe('packet_drops_count');
    expect(Object.fromEntries(sample?.labels ?? [])).toEqual({ src: 'a"b\\c\nd', dst: 'x' });
    expect(sample?.value).toBe(3);
  });

  it('takes a label value holding the syntax of labels as text', () => {
    const sample = parseSample('m{a="x=\\"1\\",b=2}",b="}"} 1');
    expect(Object.fromEntries(sample?.labels ?? [])).toEqual({ a: 'x="1",b=2}', b: '}' });
  });

  it('reads special values, exponents, a trailing comma and a timestamp', () => {
    expect(parseSample('m 1.5e3')?.value).toBe(1500);
    expect(parseSample('m{} +Inf')?.value).toBe(Number.POSITIVE_INFINITY);
    expect(parseSample('m -Inf')?.value).toBe(Number.NEGATIVE_INFINITY);
    expect(parseSample('m NaN')?.value).toBeNaN();
    expect(parseSample('m{a="1",} 2 1712345678000')).toMatchObject({ value: 2 });
  });

  it('is null for anything that is no sample', () => {
    for (const line of [
      '',
      '# HELP m help',
      'm',
      'm{a="1"',
      'm{a=1} 2',
      'm{a="1" b="2"} 2',
      'm 0x10',
      'm one',
      'm 1 2 3',
      '<html>',
    ]) {
      expect(parseSample(line), line).toBeNull();
    }
  });
});

describe('parseExposition', () => {
  it('lists the declared families, the labelled ones with no sample yet included', async () => {
    const { declared, samples } = parseExposition(await new Metrics().registry.metrics());
    expect(declared.has(LOOKUPS_METRIC)).toBe(true);
    expect(samples.some(({ name }) => name === LOOKUPS_METRIC)).toBe(false);
    expect(samples.find(({ name }) => name === 'kube_iptables_tailer_lines_read_total')?.value).toBe(0);
  });

  it('reads CRLF lines alike', () => {
    expect(parseExposition('# TYPE m counter\r\nm 4\r\n').samples).toEqual([
      { name: 'm', labels: new Map(), value: 4 },
    ]);
  });
});

describe('lookupFigures', () => {
  it("reads every outcome and the cache size from the agent's registry", async () => {
    const text = await agentScrape({ hit: 6, miss: 2, found: 3, not_found: 1, coalesced: 4 }, 9);
    expect(lookupFigures(text)).toEqual({
      outcomes: outcomes({ hit: 6, miss: 2, found: 3, not_found: 1, coalesced: 4 }),
      cacheEntries: 9,
    });
  });

  it('gives every outcome 0 when nothing was asked yet', async () => {
    expect(lookupFigures(await agentScrape({}))).toEqual({ outcomes: outcomes({}), cacheEntries: 0 });
  });

  it('leaves out outcomes it does not know, and is null for metrics that are not the agent', () => {
    const text = `${LOOKUPS_METRIC}{outcome="hit"} 2\n${LOOKUPS_METRIC}{outcome="someday"} 5\n`;
    expect(lookupFigures(text)).toEqual({ outcomes: outcomes({ hit: 2 }), cacheEntries: null });
    expect(lookupFigures('# TYPE up gauge\nup 1\n')).toBeNull();
    expect(lookupFigures('<html>not found</html>')).toBeNull();
  });
});

describe('hitRate', () => {
  it('is the hits among the answered asks; the asks still waiting do not count', () => {
    expect(hitRate(outcomes({ hit: 6, miss: 2, found: 1, not_found: 1, error: 50, coalesced: 9 }))).toBe(0.8);
    expect(hitRate(outcomes({ found: 2 }))).toBe(0);
  });

  it('is null when nothing was answered', () => {
    expect(hitRate(outcomes({}))).toBeNull();
    expect(hitRate(outcomes({ rate_limited: 3 }))).toBeNull();
  });
});

describe('checkLookups', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** An HTTP server on 127.0.0.1 answering every request with `respond`; its port. */
  async function serve(respond: (res: ServerResponse) => void): Promise<number> {
    const server = createServer((_req, res) => respond(res));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  it("reads the running agent's figures from its metrics port", async () => {
    const metrics = new Metrics();
    metrics.podLookups.inc({ outcome: 'hit' }, 3);
    metrics.podLookups.inc({ outcome: 'found' }, 1);
    metrics.podLookupCache.set(2);
    const text = await metrics.registry.metrics();
    const port = await serve((res) =>
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
    );
    expect(await checkLookups(NODE_A, port)).toEqual({
      url: `http://127.0.0.1:${port}/metrics`,
      error: null,
      outcomes: outcomes({ hit: 3, found: 1 }),
      hitRate: 0.75,
      cacheEntries: 2,
    });
  });

  it('says the metrics were not reachable at the URL when nothing listens there', async () => {
    const port = await freePort();
    const report = await checkLookups(NODE_A, port);
    expect(report).toEqual({
      url: metricsUrl(port),
      error: `the agent's metrics were not reachable at http://127.0.0.1:${port}/metrics: ECONNREFUSED`,
      outcomes: null,
      hitRate: null,
      cacheEntries: null,
    });
  });

  it('says so when the port answers something else', async () => {
    const notFound = await serve((res) => res.writeHead(404).end('no'));
    expect((await checkLookups(NODE_A, notFound)).error).toBe(
      `the agent's metrics were not reachable at http://127.0.0.1:${notFound}/metrics: HTTP 404`,
    );
    const other = await serve((res) => res.writeHead(200).end('# TYPE up gauge\nup 1\n'));
    expect((await checkLookups(NODE_A, other)).error).toBe(
      `http://127.0.0.1:${other}/metrics has no ${LOOKUPS_METRIC}: it is not this agent's metrics`,
    );
  });

  it('gives up after its time limit on a port that never answers', async () => {
    const port = await serve(() => {});
    const started = performance.now();
    const report = await checkLookups(NODE_A, port);
    expect(report.error).toMatch(/: no answer within 2 s$/);
    expect(performance.now() - started).toBeLessThan(4000);
  });

  it('reads nothing with POD_WATCH_SCOPE=cluster, or when the port is chosen at start', async () => {
    expect(await checkLookups({ scope: 'cluster', nodeName: null }, 9090)).toEqual({
      url: null,
      error: null,
      outcomes: null,
      hitRate: null,
      cacheEntries: null,
    });
    expect((await checkLookups(NODE_A, 0)).error).toMatch(/^METRICS_SERVER_PORT=0 lets the agent choose/);
  });
});
