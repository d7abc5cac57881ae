// A drop storm end to end: 100,000 kernel drop lines in about a minute, appended to a real journal by
// systemd-journal-remote and spread over 50 client→server pod pairs, read by the agent as its own process
// (journal mode, the shipped RBAC's ServiceAccount, default rate limit and queue) and written as Events to
// the real API server. The API server's own write timestamps give the write rate, /proc the agent's peak
// memory, and /metrics plus the Events account for every line.

import { randomInt } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Watch } from '@kubernetes/client-node';
import { afterAll, expect, inject, it } from 'vitest';
import { loadConfig } from '../../agent/config.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  deletePod,
  setPodRunning,
  shippedAgentToken,
  tokenKubeconfig,
} from '../support/cluster.ts';
import { daemonSetMemory } from '../support/daemonset.ts';
import { appendJournal, type JournalEntry } from '../support/journal.ts';
import { type AgentProcess, metricSum, metricValue, startAgent, waitFor } from './agent-process.ts';

const LINES = 100_000;
const BATCHES = 60;
const PAIRS = 50;
/** The defaults, since the test leaves EVENT_RATE_LIMIT_PER_SECOND and the queue size unset. */
const { eventRateLimit: RATE, queueSize: QUEUE } = loadConfig({});
/** agent/events/writer.ts: the global bucket holds max(1, ceil(rate / 10)) tokens. */
const BURST = Math.max(1, Math.ceil(RATE / 10));
const M = 'kube_iptables_tailer_';

interface Peer {
  name: string;
  ip: string;
}

/** A third octet of this run's own: pods of an earlier run that failed before deleting them keep their IPs. */
const octet = randomInt(256);
const pairs = Array.from({ length: PAIRS }, (_, i) => ({
  client: { name: `storm-client-${i}`, ip: `10.97.${octet}.${2 * i + 1}` },
  server: { name: `storm-server-${i}`, ip: `10.97.${octet}.${2 * i + 2}` },
}));

/** Line n of the storm: pair n mod 50, a fresh source port each time, always the same service port. */
function stormLine(n: number): JournalEntry {
  const { client, server } = pairs[n % PAIRS]!;
  return {
    message: `calico-packet: IN=cali0 OUT=eth0 SRC=${client.ip} DST=${server.ip} LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=${n & 65535} DF PROTO=TCP SPT=${1024 + (n % 60_000)} DPT=8080 WINDOW=501 RES=0x00 ACK URGP=0`,
  };
}

/** Runs fn over items, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** The labelled samples of a metric, for the report. */
function metricSamples(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`));
}

/** A /proc/<pid>/status field in bytes (the kernel prints kB). */
async function procStatusBytes(pid: number, field: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

interface EventObject {
  metadata: { name: string; managedFields?: { time?: string | Date }[] };
  count?: number;
}

/** An Event write as the API server reports it: its watch type and the second the server stamped it. */
interface ApiWrite {
  type: string;
  serverSecond: number;
  arrivedMs: number;
}

/** The latest managedFields time: the API server sets it, to the second, on every write that changes a value. */
function serverSecond(event: EventObject): number {
  const times = (event.metadata.managedFields ?? []).map((entry) => new Date(entry.time ?? 0).getTime());
  return Math.max(...times) / 1000;
}

/** The largest number of times (ms) in any window [t, t + 1000). */
function busiestSlidingSecond(times: readonly number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= 1000) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** One scrape of the agent's /metrics. */
interface Sample {
  atMs: number;
  text: string;
  /** The counters that move while the agent works, to tell when it has settled. */
  key: string;
  read: number;
  queue: number;
  /** created + patched + failed: every Event call the agent made. */
  writes: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

function sample(text: string): Sample {
  const value = (name: string) => metricValue(text, `${M}${name}`);
  const writes = value('events_created_total') + value('events_patched_total');
  const failed = metricSum(text, `${M}events_failed_total`);
  const dropped = metricSum(text, `${M}events_dropped_total`);
  return {
    atMs: performance.now(),
    text,
    key: [value('lines_read_total'), value('queue_depth'), writes, failed, dropped].join(' '),
    read: value('lines_read_total'),
    queue: value('queue_depth'),
    writes: writes + failed,
    rss: metricValue(text, 'process_resident_memory_bytes'),
    heapUsed: metricValue(text, 'nodejs_heap_size_used_bytes'),
    heapTotal: metricValue(text, 'nodejs_heap_size_total_bytes'),
    external: metricValue(text, 'nodejs_external_memory_bytes'),
  };
}

let cluster: Cluster | undefined;
let namespace = '';
let agent: AgentProcess | undefined;
let watch: AbortController | undefined;
let failed = true;

afterAll(async () => {
  watch?.abort();
  if (failed && agent) console.log(agent.logs().slice(-40));
  await agent?.stop('SIGKILL');
  // Pods are never deleted with their namespace here; gone, their IPs cannot confuse a later run.
  const c = cluster;
  if (c && namespace !== '') {
    const names = pairs.flatMap((pair) => [pair.client.name, pair.server.name]);
    await eachLimited(names, 10, (name) => deletePod(c, namespace, name).catch(() => {}));
  }
});

it('a 100,000-line drop storm: writes within the rate, memory within the limit, every line accounted', async () => {
  const c = connect(inject('kubeconfig'));
  cluster = c;
  const agentKubeconfig = await tokenKubeconfig(c, await shippedAgentToken(c));

  namespace = await createNamespace(c);
  const setupStart = performance.now();
  await eachLimited(
    pairs.flatMap((pair) => [pair.client, pair.server]),
    10,
    async (pod: Peer) => {
      await createPod(c, { namespace, name: pod.name, nodeName: 'node-a' });
      await setPodRunning(c, namespace, pod.name, { podIPs: [pod.ip], hostIP: '10.128.0.2' });
    },
  );
  console.log(
    `storm: ${2 * PAIRS} Running pods in ${namespace} (10.97.${octet}.0/24) in ${Math.round(performance.now() - setupStart)} ms`,
  );

  const writes: ApiWrite[] = [];
  watch = await new Watch(c.kc).watch(
    `/api/v1/namespaces/${namespace}/events`,
    {},
    (type: string, event: EventObject) => {
      if (type === 'ADDED' || type === 'MODIFIED') {
        writes.push({ type, serverSecond: serverSecond(event), arrivedMs: Date.now() });
      }
    },
    (err: unknown) => {
      // Aborted by afterAll once done; ending before that would leave writes unseen.
      if (err && !watch?.signal.aborted) console.log('storm: event watch ended early', err);
    },
  );

  const memory = await daemonSetMemory();
  const dir = await mkdtemp(join(tmpdir(), 'storm-journal-'));
  const journal = join(dir, 'system.journal');
  await appendJournal(journal, [{ message: 'Linux version 6.1.0 (storm boot)' }]);
  agent = await startAgent({
    KUBECONFIG: agentKubeconfig,
    JOURNAL_DIRECTORY: dir,
    CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'storm-checkpoint-')),
    NODE_NAME: 'node-a',
    LOG_LEVEL: 'info',
    REPEATED_EVENTS_INTERVAL_MINUTES: '0',
    ...memory.nodeOptions,
  });
  const running = agent;

  // The agent's /metrics, scraped once a second (one scrape, not a tight poll, so that the test's own
  // requests add little to the memory being measured) until the storm has drained.
  const samples: Sample[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(sample(await running.metrics()));
      await sleep(1000);
    }
  })();

  // The storm: batch k is due k seconds after the start; each waits for the one before.
  const stormStartWall = Date.now();
  const stormStart = performance.now();
  let maxLateMs = 0;
  let maxAppendMs = 0;
  for (let k = 0; k < BATCHES; k++) {
    const due = stormStart + k * 1000;
    if (performance.now() < due) await sleep(due - performance.now());
    const begun = performance.now();
    maxLateMs = Math.max(maxLateMs, begun - due);
    const from = Math.floor((k * LINES) / BATCHES);
    const to = Math.floor(((k + 1) * LINES) / BATCHES);
    await appendJournal(
      journal,
      Array.from({ length: to - from }, (_, i) => stormLine(from + i)),
    );
    maxAppendMs = Math.max(maxAppendMs, performance.now() - begun);
  }
  const stormMs = performance.now() - stormStart;
  const stormEndWall = Date.now();
  console.log(
    `storm: ${LINES} lines in ${BATCHES} batches of ~${Math.round(LINES / BATCHES)} over ${(stormMs / 1000).toFixed(1)} s from the first batch to the last one appended (${Math.round(LINES / (stormMs / 1000))} lines/s; slowest append ${Math.round(maxAppendMs)} ms, latest batch ${Math.round(maxLateMs)} ms behind schedule)`,
  );

  // Drained: every line read, nothing queued, and no counter moving for 3 s.
  const drained = await waitFor(
    () => {
      const last = samples.at(-1);
      if (last?.read !== LINES + 1 || last.queue !== 0) return false;
      const moved = samples.findLast((s) => s.key !== last.key);
      const since = samples[moved === undefined ? 0 : samples.indexOf(moved) + 1]!;
      return last.atMs - since.atMs >= 3000 && last;
    },
    150_000,
    'the storm read and the queue drained',
  ).catch((err: unknown) => {
    console.log(
      'storm: not drained; last samples (read queue writes failed dropped):',
      samples.slice(-5).map((s) => s.key),
    );
    throw err;
  });
  const metrics = drained.text;
  sampling = false;
  await sampler;
  const caughtUp = samples.find((s) => s.read >= LINES + 1);
  console.log(
    `storm: all lines read ${caughtUp ? ((caughtUp.atMs - stormStart) / 1000).toFixed(1) : '?'} s after the start, drained and settled ${((drained.atMs - stormStart) / 1000).toFixed(1)} s after it; queue depth peaked at ${Math.max(...samples.map((s) => s.queue))} (queue size ${QUEUE})`,
  );

  // Memory, while the agent still runs: its peak RSS, and its journalctl's beside it.
  const pid = running.child.pid!;
  const peak = await procStatusBytes(pid, 'VmHWM');
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/);
  const journalctlPeaks = await Promise.all(
    children.filter(Boolean).map((child) => procStatusBytes(Number(child), 'VmHWM').catch(() => 0)),
  );
  const peakOf = (field: keyof Sample) => mib(Math.max(...samples.map((s) => Number(s[field]))));
  console.log(
    `storm: agent peak RSS (VmHWM) ${mib(peak)} vs DaemonSet memory limit ${memory.limit} = ${mib(memory.bytes)} (NODE_OPTIONS ${memory.nodeOptions.NODE_OPTIONS ?? 'unset'}); RSS idle before the storm ${mib(samples[0]!.rss)}; peak V8 heap used ${peakOf('heapUsed')} of heap total ${peakOf('heapTotal')}, external ${peakOf('external')}; its journalctl peak RSS ${journalctlPeaks.map(mib).join(', ')}`,
  );
  console.log(
    `storm: RSS every 10 s: ${samples
      .filter((_, i) => i % 10 === 0)
      .map((s) => mib(s.rss).replace(' MiB', ''))
      .join(' ')} MiB`,
  );

  // The metrics account for every line.
  const value = (name: string) => metricValue(metrics, `${M}${name}`);
  const sum = (name: string) => metricSum(metrics, `${M}${name}`);
  const read = value('lines_read_total');
  const parsed = value('lines_parsed_total');
  const invalid = sum('lines_invalid_total');
  const expired = value('drops_expired_total');
  const suppressed = value('drops_suppressed_total');
  const unmatched = value('drops_unmatched_total');
  const posted = metricSum(metrics, 'packet_drops_count');
  const created = value('events_created_total');
  const patched = value('events_patched_total');
  const failures = sum('events_failed_total');
  const dropped = sum('events_dropped_total');
  const intents = 2 * posted;
  console.log(
    `storm: lines read ${read} (${LINES} drops + 1 boot line), parsed ${parsed}, invalid ${invalid}; drops expired ${expired} + suppressed ${suppressed} + unmatched ${unmatched} + posted ${posted} = ${expired + suppressed + unmatched + posted}`,
  );
  console.log(
    `storm: intents 2 × ${posted} = ${intents}; events dropped ${dropped} ${JSON.stringify(metricSamples(metrics, `${M}events_dropped_total`))}; writes: created ${created} + patched ${patched} + failed ${failures} ${JSON.stringify(metricSamples(metrics, `${M}events_failed_total`))}`,
  );

  // The Events themselves: the API's sum of counts is what the metrics say was posted and not dropped.
  const events = (await c.core.listNamespacedEvent({ namespace })).items;
  const counts = events.map((event) => event.count ?? 0);
  const countSum = counts.reduce((a, b) => a + b, 0);
  console.log(
    `storm: ${events.length} Events, Σ count ${countSum} = intents ${intents} − dropped ${dropped}? ${countSum === intents - dropped}; per Event min ${Math.min(...counts)} max ${Math.max(...counts)}`,
  );

  // The write rate, by the API server's own clock: one managedFields second per create or patch. The
  // watch may lag behind the agent's counters: wait until it has delivered every write they count.
  await waitFor(() => writes.length >= created + patched, 10_000, 'the watch to deliver every write').catch(
    () => {},
  );
  const perSecond = new Map<number, number>();
  for (const write of writes) perSecond.set(write.serverSecond, (perSecond.get(write.serverSecond) ?? 0) + 1);
  const seconds = [...perSecond.keys()];
  const first = Math.min(...seconds);
  const last = Math.max(...seconds);
  const busiest = Math.max(...perSecond.values());
  const meanOverall = writes.length / (last - first + 1);
  // The storm's seconds on the server clock (same host), from its first write to the last batch appended.
  const stormSeconds =
    Math.floor(stormEndWall / 1000) - Math.max(first, Math.floor(stormStartWall / 1000)) + 1;
  const inStorm = writes.filter((write) => write.serverSecond <= Math.floor(stormEndWall / 1000)).length;
  const meanStorm = inStorm / stormSeconds;
  const sampled = samples.slice(1).map((sample, i) => sample.writes - samples[i]!.writes);
  const busiestSeconds = [...perSecond.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([second, n]) => `${new Date(second * 1000).toISOString().slice(11, 19)}=${n}`);
  console.log(
    `storm: API writes seen ${writes.length} (ADDED ${writes.filter((w) => w.type === 'ADDED').length}, MODIFIED ${writes.filter((w) => w.type === 'MODIFIED').length}) over ${last - first + 1} server seconds; busiest server second ${busiest} (${busiestSeconds.join(' ')}); limit rate ${RATE} + burst ${BURST} = ${RATE + BURST}`,
  );
  console.log(
    `storm: mean ${meanOverall.toFixed(2)} writes/s from first to last write, ${meanStorm.toFixed(2)} writes/s during the storm (${inStorm} in ${stormSeconds} s); cross-checks: busiest 1-s window by watch arrival ${busiestSlidingSecond(writes.map((w) => w.arrivedMs))}, busiest 1-s metrics sample delta ${Math.max(...sampled)}`,
  );

  expect(read).toBe(LINES + 1);
  expect(parsed).toBe(LINES);
  expect(invalid).toBe(0);
  expect(expired + suppressed + unmatched + posted).toBe(parsed);
  expect(posted).toBe(LINES);
  expect(value('queue_depth')).toBe(0);
  // One Event per pod, each created once and patched after: the API saw exactly the writes counted.
  expect(events).toHaveLength(2 * PAIRS);
  expect(created).toBe(events.length);
  expect(writes.filter((w) => w.type === 'ADDED')).toHaveLength(created);
  expect(writes.filter((w) => w.type === 'MODIFIED')).toHaveLength(patched);
  expect(countSum).toBe(intents - dropped);

  // A token bucket lets at most rate + burst calls start in any one second. The server stamps a call a
  // little after the agent takes its token, and that delay varies (event loop, CPU shared by five
  // processes on two cores): a call started just before a second boundary can be stamped in the next
  // second while one started later is stamped in time. Hence one call of slack on the busiest second.
  expect(busiest).toBeLessThanOrEqual(RATE + BURST + 1);
  expect(meanOverall).toBeLessThanOrEqual(RATE);
  expect(meanStorm).toBeLessThanOrEqual(RATE);

  expect(memory.bytes).toBeGreaterThan(0);
  expect(peak).toBeLessThan(memory.bytes);
  failed = false;
}, 300_000);
