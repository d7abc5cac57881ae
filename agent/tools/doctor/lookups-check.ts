/**
 * doctor's look at the running agent's pod lookups (POD_WATCH_SCOPE=node): its own /metrics, scraped on
 * this host, since doctor runs in the agent's pod (`kubectl exec ds/kube-iptables-tailer -- ... doctor`).
 * The figures are the agent's since it started; doctor cannot make them, only read them.
 */

import type { LookupOutcome } from '../../locator/pod-lookup.ts';
import { printable } from './census.ts';
import { parseExposition } from './exposition.ts';
import type { LookupsReport, WatchReport } from './types.ts';

export const LOOKUPS_METRIC = 'kube_iptables_tailer_pod_lookups_total';
const CACHE_METRIC = 'kube_iptables_tailer_pod_lookup_cache_entries';
/** The agent answers a scrape at once; anything slower is something else listening, or a stuck agent. */
const SCRAPE_TIMEOUT_MS = 2000;

export interface LookupFigures {
  outcomes: Record<LookupOutcome, number>;
  cacheEntries: number | null;
}

/** Every outcome PodLookup counts, at 0: a Record literal, so the compiler keeps the list complete. */
function noLookups(): Record<LookupOutcome, number> {
  return { hit: 0, miss: 0, found: 0, not_found: 0, error: 0, rate_limited: 0, coalesced: 0 };
}

function isOutcome(outcomes: Record<LookupOutcome, number>, label: string): label is LookupOutcome {
  return Object.hasOwn(outcomes, label);
}

/**
 * The lookup counts and cache size in a scrape of the agent's /metrics; null when it has no pod_lookups_total
 * at all (not the agent's metrics). Outcomes a newer agent may add are left out.
 */
export function lookupFigures(text: string): LookupFigures | null {
  const { declared, samples } = parseExposition(text);
  if (!declared.has(LOOKUPS_METRIC) && !samples.some(({ name }) => name === LOOKUPS_METRIC)) return null;
  const outcomes = noLookups();
  let cacheEntries: number | null = null;
  for (const { name, labels, value } of samples) {
    if (name === CACHE_METRIC) cacheEntries = value;
    const outcome = labels.get('outcome');
    if (name === LOOKUPS_METRIC && outcome !== undefined && isOutcome(outcomes, outcome))
      outcomes[outcome] += value;
  }
  return { outcomes, cacheEntries };
}

/**
 * (hit + miss) / (hit + miss + found + not_found): of the asks answered at all, those the cache answered
 * without a call to the API server, with pods (hit) or with a recent "no pod has it" (miss); error,
 * rate_limited and coalesced are asks not answered yet. A pod found by a lookup is named from the pod index
 * while its entry lasts, without asking again, so hits alone would undercount what the cache saves. null
 * when none was answered.
 */
export function hitRate(outcomes: Record<LookupOutcome, number>): number | null {
  const { hit, miss, found, not_found } = outcomes;
  const answered = hit + miss + found + not_found;
  return answered === 0 ? null : (hit + miss) / answered;
}

/** The agent's metrics endpoint, as `run` serves it on METRICS_SERVER_PORT. */
export function metricsUrl(port: number): string {
  return `http://127.0.0.1:${port}/metrics`;
}

/** fetch's failures: the time limit, or the network error under its generic "fetch failed". */
function scrapeError(err: unknown): string {
  if (err instanceof DOMException && err.name === 'TimeoutError') {
    return `no answer within ${SCRAPE_TIMEOUT_MS / 1000} s`;
  }
  const cause = err instanceof Error ? err.cause : undefined;
  const { code, message } = (cause ?? err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') return code;
  return typeof message === 'string' && message !== '' ? message : String(err);
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  return response.text();
}

/** Never throws: an agent that cannot be reached leaves the figures out, and says why. */
export async function checkLookups(watch: WatchReport, metricsPort: number): Promise<LookupsReport> {
  const none = { outcomes: null, hitRate: null, cacheEntries: null };
  if (watch.scope === 'cluster') return { url: null, error: null, ...none };
  if (metricsPort === 0) {
    return {
      url: null,
      error:
        "METRICS_SERVER_PORT=0 lets the agent choose its port, so doctor cannot find the agent's metrics",
      ...none,
    };
  }
  const url = metricsUrl(metricsPort);
  let text: string;
  try {
    text = await scrape(url);
  } catch (err) {
    return {
      url,
      error: printable(`the agent's metrics were not reachable at ${url}: ${scrapeError(err)}`),
      ...none,
    };
  }
  const figures = lookupFigures(text);
  if (figures === null) {
    return { url, error: `${url} has no ${LOOKUPS_METRIC}: it is not this agent's metrics`, ...none };
  }
  return { url, error: null, ...figures, hitRate: hitRate(figures.outcomes) };
}
