// The live agent against API faults: 429 Too Many Requests with Retry-After, answers slower than the
// agent's request timeout, its pod watch cut mid-stream, 410 Gone on a watch, and the API server restarted.
// The API server is the real one; the faults come from a proxy in front of it (test/support/fault-proxy.ts),
// except for the restart, done to a private control plane. In each case the pod index must converge, no
// drop within the expiry window may be lost, and no Event count may be inflated.

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { type Cluster, connect, privateControlPlane, shippedAgentToken } from '../support/cluster.ts';
import { FaultProxy } from '../support/fault-proxy.ts';
import { appendJournal } from '../support/journal.ts';
import { type AgentProcess, metricValue, waitFor } from './agent-process.ts';
import {
  agentLauncher,
  drops,
  eventCounts,
  journalAgentEnv,
  journalDir,
  type Pair,
  podPairs,
} from './scenario.ts';

const POD_LIST = /^\/api\/v1\/pods\?(?!.*watch=)/;
const POD_WATCH = /^\/api\/v1\/pods\?.*watch=(true|1)/;
const eventsIn = (namespace: string) => new RegExp(`^/api/v1/namespaces/${namespace}/events(/|$|\\?)`);

const agentWith = agentLauncher();
const podPair = podPairs('10.98');

function watchCounter(metrics: string, counter: string): number {
  return metricValue(metrics, 'kube_iptables_tailer_api_watch_total', `resource="pods",counter="${counter}"`);
}

/** The new pair's drops came while the index was behind: held until it caught up, none given up as unmatched. */
function expectHeldNotLost(metrics: string): void {
  expect(metricValue(metrics, 'kube_iptables_tailer_drops_held_total')).toBeGreaterThanOrEqual(2);
  expect(metricValue(metrics, 'kube_iptables_tailer_drops_unmatched_total')).toBe(0);
}

/** Waits until both pods' Events count exactly `n`, then checks that nothing more arrives. */
async function expectCounted(c: Cluster, pair: Pair, n: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const counts = await eventCounts(c, pair.namespace);
      return counts.client === n && counts.server === n;
    },
    timeoutMs,
    `${n} drops counted on both pods`,
  );
  // Settled: a retried or re-read write must not add to the counts later.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect(await eventCounts(c, pair.namespace)).toEqual({ client: n, server: n });
}

describe('API faults through a proxy', () => {
  let c: Cluster;
  let token: string;
  let proxy: FaultProxy;
  let kubeconfig: string;

  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    token = await shippedAgentToken(c);
  });

  beforeEach(async () => {
    proxy = await FaultProxy.start(c);
    kubeconfig = join(await mkdtemp(join(tmpdir(), 'kubeconfig-')), 'kubeconfig');
    await writeFile(kubeconfig, proxy.kubeconfig(token), { mode: 0o600 });
  });

  afterEach(() => proxy.close());

  async function agentOn(dir: string): Promise<AgentProcess> {
    return agentWith(await journalAgentEnv(kubeconfig, dir));
  }

  it('waits out 429 Retry-After on Event writes, then writes every drop once', async () => {
    const pair = await podPair(c);
    const events = eventsIn(pair.namespace);
    proxy.add({ method: 'POST', url: events, times: 2, status: 429, retryAfterSeconds: 2 });
    const { dir, file } = await journalDir();
    await agentOn(dir);
    await appendJournal(file, drops(pair, 0, 3));
    await expectCounted(c, pair, 3);

    const posts = proxy.seen('POST', events);
    const throttled = posts.filter((r) => r.status === 429);
    const created = posts.filter((r) => r.status === 201);
    expect(throttled).toHaveLength(2);
    expect(created).toHaveLength(2);
    const waited = Math.min(...created.map((r) => r.at)) - Math.min(...throttled.map((r) => r.at));
    console.log(`429 on writes: first create ${waited} ms after the first 429 (Retry-After 2 s)`);
    expect(waited).toBeGreaterThanOrEqual(1990);
  });

  it('waits out 429 Retry-After on the pod list, becomes ready after it, then finds the pods', async () => {
    const pair = await podPair(c);
    proxy.add({ method: 'GET', url: POD_LIST, times: 1, status: 429, retryAfterSeconds: 3 });
    const { dir, file } = await journalDir();
    const started = Date.now();
    await agentOn(dir);
    const readyAfter = Date.now() - started;

    const lists = proxy.seen('GET', POD_LIST);
    expect(lists.map((r) => r.status).slice(0, 2)).toEqual([429, 200]);
    const relisted = lists[1]!.at - lists[0]!.at;
    console.log(
      `429 on the pod list: listed again after ${relisted} ms (Retry-After 3 s), ready after ${readyAfter} ms`,
    );
    expect(relisted).toBeGreaterThanOrEqual(2990);
    expect(readyAfter).toBeGreaterThanOrEqual(3000);
    await appendJournal(file, drops(pair, 0, 2));
    await expectCounted(c, pair, 2);
  });

  it('counts a drop once when its write answers after the client timed out, and when writes are slow', async () => {
    const pair = await podPair(c);
    const events = eventsIn(pair.namespace);
    // Creates answer in 1.5 s (slow, within the agent's 10 s request timeout); the first PATCH is applied
    // by the server at once but answered after 11 s, so the agent times out and tries again.
    proxy.add({ method: 'POST', url: events, holdResponseMs: 1500 });
    proxy.add({ method: 'PATCH', url: events, times: 1, holdResponseMs: 11_000 });
    const { dir, file } = await journalDir();
    const agent = await agentOn(dir);
    await appendJournal(file, drops(pair, 0, 1));
    await expectCounted(c, pair, 1);
    await appendJournal(file, drops(pair, 1, 2));
    const timeouts = await waitFor(
      async () =>
        metricValue(await agent.metrics(), 'kube_iptables_tailer_events_failed_total', 'reason="timeout"'),
      20_000,
      'a write timed out on the client',
    );
    // Retried after the timeout, while the server had applied the first attempt already.
    await expectCounted(c, pair, 3);
    const patches = proxy.seen('PATCH', events);
    console.log(
      `slow writes: ${timeouts} write(s) timed out on the client; ${patches.length} PATCH requests, ${patches.filter((r) => r.status === 0).length} answered too late`,
    );
    expect(patches.filter((r) => r.status === 0)).toHaveLength(1);
  }, 90_000);

  it('resumes a pod watch cut mid-stream and indexes the pods created meanwhile', async () => {
    const before = await podPair(c);
    const { dir, file } = await journalDir();
    const agent = await agentOn(dir);
    await waitFor(() => proxy.seen('GET', POD_WATCH).some((r) => r.status === 200), 10_000, 'a pod watch');
    // The next two attempts fail as well, so the new pods surely arrive while no watch is open.
    proxy.add({ method: 'GET', url: POD_WATCH, times: 2, status: 503 });
    const cutAt = Date.now();
    expect(proxy.cut(POD_WATCH)).toBeGreaterThanOrEqual(1);
    const after = await podPair(c);

    await appendJournal(file, [...drops(before, 0, 1), ...drops(after, 0, 2)]);
    await expectCounted(c, after, 2);
    const converged = Date.now() - cutAt;
    expect(await eventCounts(c, before.namespace)).toEqual({ client: 1, server: 1 });
    const metrics = await agent.metrics();
    const watches = proxy.seen('GET', POD_WATCH);
    console.log(
      `watch cut: index converged ${converged} ms after the cut (two failed reconnects on the way); ${watches.length} watch requests, reconnects ${watchCounter(metrics, 'reconnects')}`,
    );
    expect(watches.filter((r) => r.status === 503)).toHaveLength(2);
    expectHeldNotLost(metrics);
    expect(watchCounter(metrics, 'reconnects')).toBeGreaterThanOrEqual(1);
    // Resumed from its resourceVersion: the cut alone is no reason to list everything again.
    expect(watchCounter(metrics, 'relists')).toBe(0);
    expect(watches.at(-1)?.url).toMatch(/resourceVersion=\d+/);
  });

  it('lists again after 410 Gone on its watch and indexes the pods created meanwhile', async () => {
    const before = await podPair(c);
    const { dir, file } = await journalDir();
    const agent = await agentOn(dir);
    await waitFor(() => proxy.seen('GET', POD_WATCH).some((r) => r.status === 200), 10_000, 'a pod watch');
    const listsBefore = proxy.seen('GET', POD_LIST).length;
    proxy.add({ method: 'GET', url: POD_WATCH, times: 1, gone: true });
    const cutAt = Date.now();
    proxy.cut(POD_WATCH);
    const after = await podPair(c);

    await appendJournal(file, [...drops(before, 0, 1), ...drops(after, 0, 2)]);
    await expectCounted(c, after, 2);
    const converged = Date.now() - cutAt;
    expect(await eventCounts(c, before.namespace)).toEqual({ client: 1, server: 1 });
    const gone = proxy.requests.find((r) => r.rule !== null && POD_WATCH.test(r.url));
    const relist = proxy.seen('GET', POD_LIST).slice(listsBefore);
    const metrics = await agent.metrics();
    console.log(
      `410 Gone: listed again ${relist[0] && gone ? relist[0].at - gone.at : '?'} ms after it; index converged ${converged} ms after the cut`,
    );
    expect(gone).toBeDefined();
    expect(relist.length).toBeGreaterThanOrEqual(1);
    expect(relist[0]!.at).toBeGreaterThanOrEqual(gone!.at);
    expect(watchCounter(metrics, 'relists')).toBeGreaterThanOrEqual(1);
    expectHeldNotLost(metrics);
  });
});

describe('API server restarted', () => {
  it('converges on the pods created after the restart and counts every drop once', async () => {
    const plane = await privateControlPlane();
    try {
      const c = plane.cluster;
      const before = await podPair(c);
      const { dir, file } = await journalDir();
      const agent = await agentWith(await journalAgentEnv(c.kubeconfig, dir));
      await appendJournal(file, drops(before, 0, 2));
      await waitFor(async () => (await eventCounts(c, before.namespace)).client === 2, 15_000, 'two drops');

      const restart = Date.now();
      await plane.testenv('restart-apiserver');
      const after = await podPair(c);
      await appendJournal(file, [...drops(before, 2, 2), ...drops(after, 0, 2)]);
      await expectCounted(c, after, 2, 60_000);
      await expectCounted(c, before, 4);
      const metrics = await agent.metrics();
      console.log(
        `restart: pods of after the restart found, every drop counted once, ${Date.now() - restart} ms after the restart began; reconnects ${watchCounter(metrics, 'reconnects')}`,
      );
      expect(watchCounter(metrics, 'reconnects')).toBeGreaterThanOrEqual(1);
    } finally {
      await plane.down();
    }
  }, 120_000);
});
