// The agent under a flood of drops, as its own process with the shipped RBAC, against the real
// kube-apiserver, reading a real journal: a scan at one pod must not silence the node, news must get
// through a storm within 2 s, SIGTERM must end the process on time whatever the API server does (and a
// restart must count exactly what was not written), and a line dated in the future must not freeze Events.
// Namespaces are left behind: without a namespace controller a deleted one stays Terminating (see
// test/support/cluster.ts); their pods are deleted after each test.

import { randomInt } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CoreV1Event } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../agent/config.ts';
import { LAST_DROP_ANNOTATION } from '../../agent/events/api.ts';
import { aggregationKey, eventName } from '../../agent/events/event.ts';
import { dropMessage } from '../../agent/events/message.ts';
import { drop as dropOf, pod as podRef } from '../pipeline/fixtures.ts';
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
import { FaultProxy } from '../support/fault-proxy.ts';
import { appendJournal, type JournalEntry, tempDir } from '../support/journal.ts';
import { type AgentProcess, metricSum, metricValue, waitFor } from './agent-process.ts';
import { agentLauncher, journalAgentEnv, journalDir } from './scenario.ts';

const M = 'kube_iptables_tailer_';
/** The default PACKET_DROP_CHANNEL_BUFFER_SIZE: the writer is overloaded with this many Events pending. */
const { queueSize: QUEUE } = loadConfig({});
/** How soon news must be in the API, whatever else the node drops. */
const NEWS_MS = 2_000;
const agentWith = agentLauncher();
/** A /16 of this file's own, and a third octet of this run's own: pods of another run keep their IPs. */
const run = randomInt(200);
let hosts = 0;
const nextIp = () => {
  hosts++;
  return `10.95.${run + Math.floor(hosts / 250)}.${(hosts % 250) + 1}`;
};

interface Pod {
  namespace: string;
  name: string;
  ip: string;
  uid: string;
}

let c: Cluster;
let kubeconfig: string;
const created: Pod[] = [];
const temporary: string[] = [];

beforeAll(async () => {
  c = connect(inject('kubeconfig'));
  kubeconfig = await tokenKubeconfig(c, await shippedAgentToken(c));
  temporary.push(dirname(kubeconfig));
});

afterEach(async () => {
  const pods = created.splice(0);
  for (let i = 0; i < pods.length; i += 20) {
    await Promise.allSettled(pods.slice(i, i + 20).map((p) => deletePod(c, p.namespace, p.name)));
  }
});

// After every test, so after agentLauncher has killed the agents that used these directories.
afterAll(() => Promise.all(temporary.splice(0).map((dir) => rm(dir, { recursive: true, force: true }))));

async function runningPods(namespace: string, names: readonly string[]): Promise<Pod[]> {
  const pods: Pod[] = [];
  for (let i = 0; i < names.length; i += 20) {
    const batch = await Promise.all(
      names.slice(i, i + 20).map(async (name) => {
        const ip = nextIp();
        const made = await createPod(c, { namespace, name, nodeName: 'node-a' });
        await setPodRunning(c, namespace, name, { podIPs: [ip], hostIP: '10.128.0.2' });
        return { namespace, name, ip, uid: made.metadata?.uid ?? '' };
      }),
    );
    pods.push(...batch);
  }
  created.push(...pods);
  return pods;
}

/** A journal of its own and what an agent reading it with the shipped RBAC needs; removed after the file. */
async function journal(): Promise<{ file: string; env: Record<string, string> }> {
  const { dir, file } = await journalDir();
  const env = await journalAgentEnv(kubeconfig, dir);
  temporary.push(dir, env.CHECKPOINT_DIRECTORY);
  return { file, env };
}

/** A kernel drop line in the journal, at `timeUs` (distinct per line, so a restart can tell them apart). */
function line(src: string, dst: string, dport: number, sport: number, timeUs?: number): JournalEntry {
  return {
    message: `calico-packet: IN=cali1 OUT=eth0 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=${dport} WINDOW=42600 RES=0x00 SYN URGP=0`,
    ...(timeUs === undefined ? {} : { realtimeUs: timeUs }),
  };
}

/** The Events of a namespace, or of one pod in it (a field selector: a storm's namespace holds thousands). */
async function eventsOf(namespace: string, pod?: string): Promise<CoreV1Event[]> {
  const selector = pod === undefined ? {} : { fieldSelector: `involvedObject.name=${pod}` };
  return (await c.core.listNamespacedEvent({ namespace, ...selector })).items;
}

const countOf = (events: readonly CoreV1Event[]) => events.reduce((n, e) => n + (e.count ?? 0), 0);

/**
 * Milliseconds from `since` until the condition holds, polled; Infinity when it still does not hold after
 * 20 s, far beyond any bound asserted (a wait that runs beside others must not reject unobserved).
 */
async function msUntil(since: number, condition: () => Promise<boolean>): Promise<number> {
  return waitFor(condition, 20_000, 'a bound asserted after').then(
    () => performance.now() - since,
    () => Number.POSITIVE_INFINITY,
  );
}

/**
 * The sum of the namespace's Event counts once the agent has nothing pending and the sum has not moved
 * for 2 s.
 */
async function quietTotal(agent: AgentProcess, namespace: string): Promise<number> {
  let last = -1;
  let since = performance.now();
  return waitFor(
    async () => {
      const total = countOf(await eventsOf(namespace));
      const idle = metricValue(await agent.metrics(), `${M}queue_depth`) === 0;
      if (total !== last || !idle) {
        last = total;
        since = performance.now();
        return null;
      }
      return performance.now() - since >= 2_000 && total;
    },
    60_000,
    'the Event counts to settle',
  );
}

/** Every drop read counted once, and every side posted ended once, with nothing left waiting. */
async function expectAccounted(agent: AgentProcess, sides: number): Promise<void> {
  const text = await waitFor(
    async () => {
      const t = await agent.metrics();
      return metricValue(t, `${M}queue_depth`) === 0 &&
        metricSum(t, `${M}drop_sides_total`) + metricSum(t, `${M}events_dropped_total`) >= sides
        ? t
        : null;
    },
    90_000,
    'every side written or given up',
  );
  const parsed = metricValue(text, `${M}lines_parsed_total`);
  const outcomes = [
    'drops_expired_total',
    'drops_suppressed_total',
    'drops_unmatched_total',
    'drops_posted_total',
  ];
  expect(outcomes.reduce((total, name) => total + metricValue(text, `${M}${name}`), 0)).toBe(parsed);
  expect(metricSum(text, `${M}drop_sides_total`) + metricSum(text, `${M}events_dropped_total`)).toBe(sides);
}

describe('the agent under a flood of drops', () => {
  it('keeps posting other pods’ drops within 2 s during a scan at one pod, which becomes one combined Event', async () => {
    const namespace = await createNamespace(c);
    const [victim, client, server] = (await runningPods(namespace, ['victim', 'client', 'server'])) as [
      Pod,
      Pod,
      Pod,
    ];
    const { file, env } = await journal();
    // At the default burst of 5 the victim's 11 Events and the combined one's patches would take a minute
    // at one write per 10 s; what the test proves, that the scan holds no other pod back, does not depend
    // on the victim's own pace.
    const agent = await agentWith({ ...env, EVENT_BURST_PER_POD: '20' });
    const sources = Array.from({ length: 5000 }, (_, n) => `198.18.${n >> 8}.${n & 255}`);
    await appendJournal(
      file,
      sources.map((source, n) => line(source, victim.ip, 443, 40000 + (n % 20000))),
    );
    const appended = performance.now();
    await appendJournal(file, [line(client.ip, server.ip, 8080, 5555)]);
    const others = async () =>
      (await eventsOf(namespace))
        .filter((e) => e.involvedObject.name !== 'victim')
        .map((e) => [e.involvedObject.name, e.reason, e.message, e.count])
        .sort();
    const ms = await msUntil(appended, async () => (await others()).length === 2);
    console.log(`overload: the other pair’s Events ${Math.round(ms)} ms after the scan’s 5,000 lines`);
    expect(await others()).toEqual([
      [
        'client',
        'PacketDrop',
        `Packet dropped when sending traffic to ${namespace} (${server.ip}) on port 8080/TCP`,
        1,
      ],
      [
        'server',
        'PacketDrop',
        `Packet dropped when receiving traffic from ${namespace} (${client.ip}) on port 8080/TCP`,
        1,
      ],
    ]);
    expect(ms).toBeLessThan(NEWS_MS);

    const victimEvents = await waitFor(
      async () => {
        const list = await eventsOf(namespace, 'victim');
        return list.length >= 11 && countOf(list) === 5000 ? list : null;
      },
      30_000,
      'the victim’s Events counting 5,000 drops',
    );
    expect(victimEvents.every((e) => e.reason === 'PacketDrop')).toBe(true);
    const byMessage = victimEvents.map((e) => [e.message, e.count]).sort();
    expect(byMessage).toEqual(
      [
        [
          `Packet dropped when receiving traffic from 5,000 sources on port 443/TCP (e.g. ${sources.slice(10, 13).join(', ')}, …)`,
          4990,
        ],
        ...sources
          .slice(0, 10)
          .map((source) => [`Packet dropped when receiving traffic from ${source} on port 443/TCP`, 1]),
      ].sort(),
    );
    await expectAccounted(agent, 5002);
  }, 60_000);

  it('gets a fresh pair’s Event into the API within 2 s during a storm between 200 pods, and reads on', async () => {
    const namespace = await createNamespace(c);
    const storm = await runningPods(
      namespace,
      Array.from({ length: 200 }, (_, i) => `storm-${i}`),
    );
    const fresh = await runningPods(
      namespace,
      Array.from({ length: 6 }, (_, i) => `fresh-${i}`),
    );
    const { file, env } = await journal();
    // Drops the writer has not got to within a minute are given up: the backlog of a storm at the default
    // rate ends within a bounded time, so the accounting can be checked.
    const agent = await agentWith({ ...env, PACKET_DROP_EXPIRATION_MINUTES: '1' });
    // Appends follow one another (systemd-journal-remote instances must not write one file at once); the
    // wait for each fresh pair's Event runs beside the storm.
    let lines = 0;
    const news: Promise<number>[] = [];
    const appendNews = async (k: number) => {
      const [from, to] = [fresh[2 * k]!, fresh[2 * k + 1]!];
      const at = performance.now();
      await appendJournal(file, [line(from.ip, to.ip, 9090, 7000 + k)]);
      const message = `Packet dropped when sending traffic to ${namespace} (${to.ip}) on port 9090/TCP`;
      news.push(
        msUntil(at, async () => (await eventsOf(namespace, from.name)).some((e) => e.message === message)),
      );
    };
    const stormStart = performance.now();
    for (let second = 0; second < 15; second++) {
      const due = stormStart + second * 1000;
      if (performance.now() < due)
        await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
      await appendJournal(
        file,
        Array.from({ length: 300 }, () => {
          const a = randomInt(200);
          const b = (a + 1 + randomInt(199)) % 200;
          return line(storm[a]!.ip, storm[b]!.ip, 8080, 1024 + (lines++ % 60_000));
        }),
      );
      if (second === 5 || second === 10) await appendNews(second / 5 - 1);
    }
    const stormEnd = performance.now();
    await appendNews(2);
    const readMs = await msUntil(
      stormEnd,
      async () => metricValue(await agent.metrics(), `${M}lines_parsed_total`) === lines + 3,
    );
    const latencies = await Promise.all(news);
    console.log(
      `overload: storm of ${lines} lines in ${Math.round((stormEnd - stormStart) / 1000)} s, all read ${Math.round(readMs)} ms after its last append; fresh-pair latencies ${latencies.map(Math.round).join(', ')} ms`,
    );
    expect(readMs).toBeLessThan(5_000);
    for (const ms of latencies) expect(ms).toBeLessThan(NEWS_MS);
    const text = await agent.metrics();
    expect(metricValue(text, `${M}read_wait_seconds_total`)).toBe(0);
    expect(metricValue(text, `${M}drops_posted_total`)).toBe(lines + 3);
    await expectAccounted(agent, 2 * (lines + 3));
  }, 150_000);

  it('exits within the grace period on SIGTERM while the API server is slow, and a restart counts exactly what was not written', async () => {
    const namespace = await createNamespace(c);
    const pods = await runningPods(
      namespace,
      Array.from({ length: 30 }, (_, i) => `pod-${i}`),
    );
    const proxy = await FaultProxy.start(c);
    try {
      const slow = join(await tempDir('kubeconfig'), 'kubeconfig');
      temporary.push(dirname(slow));
      await writeFile(slow, proxy.kubeconfig(await shippedAgentToken(c)), { mode: 0o600 });
      const { file, env } = await journal();
      // Five senders with 25 peers each: their drops are combined past the 10th peer (sooner while the
      // writer is overloaded). The first 600 lines, which meet every peer, are written and checkpointed
      // while the API server is fast; the rest meet a slow one and SIGTERM. The restarted agent re-reads
      // only those, and must count them in the Events they went to before (the combining state it saved),
      // not give the peers it meets first Events of their own.
      const first = await agentWith({
        ...env,
        KUBECONFIG: slow,
        SHUTDOWN_GRACE_SECONDS: '2',
        EVENT_BURST_PER_POD: '100',
      });
      const startUs = Date.now() * 1000;
      const lines = Array.from({ length: 2000 }, (_, n) => {
        const from = pods[n % 5]!;
        const to = pods[5 + (Math.floor(n / 5) % 25)]!;
        return line(from.ip, to.ip, 8080, 1024 + n, startUs + n * 1000);
      });
      await appendJournal(file, lines.slice(0, 600));
      await waitFor(
        async () => {
          const text = await first.metrics();
          return (
            metricValue(text, `${M}lines_parsed_total`) === 600 && metricValue(text, `${M}queue_depth`) === 0
          );
        },
        20_000,
        'the first part written',
      );
      const written = await eventsOf(namespace);
      const names = written.map((e) => e.metadata?.name).sort();
      expect(written.some((e) => e.message?.includes(' destinations on port 8080/TCP'))).toBe(true);
      // The checkpoint is saved at most once a second.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      // Answers held longer than the grace period and its margin: calls still in flight at SIGTERM must
      // not keep the process alive (they land, and the restart must not count their drops again).
      proxy.add({ url: new RegExp(`^/api/v1/namespaces/${namespace}/events`), holdResponseMs: 5_000 });
      await appendJournal(file, lines.slice(600));
      await waitFor(
        async () => metricValue(await first.metrics(), `${M}lines_parsed_total`) === 2000,
        20_000,
        'the flood read',
      );
      expect(metricValue(await first.metrics(), `${M}queue_depth`)).toBeGreaterThanOrEqual(QUEUE);
      const killed = performance.now();
      await first.stop('SIGTERM');
      const exitMs = performance.now() - killed;
      console.log(`overload: SIGTERM to exit ${Math.round(exitMs)} ms with SHUTDOWN_GRACE_SECONDS=2`);
      expect(exitMs).toBeLessThan(3_000);
      // It got through its own shutdown (checkpoint and combining state saved), not only the hard exit.
      expect(first.logs().some((entry) => entry.msg === 'stopped')).toBe(true);

      // Generous rates: the restarted agent catches up within seconds.
      const second = await agentWith({
        ...env,
        EVENT_RATE_LIMIT_PER_SECOND: '200',
        EVENT_BURST_PER_POD: '100',
      });
      // Every side in the file counted once: none lost with the first agent, none counted twice.
      expect(await quietTotal(second, namespace)).toBe(4000);
      // And each in an Event the first part had made.
      expect((await eventsOf(namespace)).map((e) => e.metadata?.name).sort()).toEqual(names);
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('takes a line dated in 2035 as now, and a 2035 mark on an existing Event never blocks later drops', async () => {
    const namespace = await createNamespace(c);
    const [client, server, other, peer] = (await runningPods(namespace, [
      'client',
      'server',
      'other',
      'peer',
    ])) as [Pod, Pod, Pod, Pod];
    // An Event an older agent wrote from a line dated 2035, with the name this agent gives it.
    const otherDrop = dropOf({ src: other.ip, dst: peer.ip, dstPort: 8080 });
    const message = dropMessage('send', otherDrop, namespace);
    const otherRef = podRef({ namespace, name: 'other', uid: other.uid, ips: [other.ip] });
    const key = aggregationKey(
      {
        pod: otherRef,
        direction: 'send',
        message,
        subject: message,
        combined: false,
        related: undefined,
        time: 0,
        host: 'node-a',
        drop: otherDrop,
      },
      { eventReason: 'PacketDrop', eventSourceComponent: 'kube-iptables-tailer' },
    );
    const future = Date.parse('2035-01-01T00:00:00Z');
    await c.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { name: eventName('other', key), annotations: { [LAST_DROP_ANNOTATION]: String(future) } },
        involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace, name: 'other', uid: other.uid },
        type: 'Warning',
        reason: 'PacketDrop',
        message,
        count: 5,
        firstTimestamp: new Date(future),
        lastTimestamp: new Date(future),
        source: { component: 'kube-iptables-tailer', host: 'node-a' },
      },
    });
    const { file, env } = await journal();
    // REPEATED_EVENTS_INTERVAL_MINUTES=0 (agentLauncher): every drop of the pair is posted.
    const first = await agentWith(env);
    const clientEvent = async () => (await eventsOf(namespace, 'client'))[0];
    const otherEvent = async () => (await eventsOf(namespace, 'other'))[0];
    const expectNotAhead = (event: CoreV1Event | undefined) =>
      expect(event?.lastTimestamp?.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
    await appendJournal(file, [line(client.ip, server.ip, 8080, 1, future * 1000)]);
    await waitFor(async () => (await clientEvent())?.count === 1, 20_000, 'the client Event');
    expectNotAhead(await clientEvent());
    expect(metricValue(await first.metrics(), `${M}drops_future_dated_total`)).toBe(1);
    // Dated now, so behind the first line's own date; each a write of its own to the Event it made.
    for (const n of [2, 3, 4]) {
      await appendJournal(file, [line(client.ip, server.ip, 8080, n)]);
      await waitFor(async () => (await clientEvent())?.count === n, 20_000, `the client Event counting ${n}`);
    }
    expectNotAhead(await clientEvent());
    await appendJournal(file, [line(other.ip, peer.ip, 8080, 1)]);
    await waitFor(async () => (await otherEvent())?.count === 6, 20_000, 'the old Event counting on');
    expectNotAhead(await otherEvent());

    await first.stop('SIGTERM');
    const second = await agentWith(env);
    await appendJournal(
      file,
      [5, 6].map((n) => line(client.ip, server.ip, 8080, n)),
    );
    await waitFor(
      async () => (await clientEvent())?.count === 6,
      20_000,
      'the client Event counting on after a restart',
    );
    expect(metricSum(await second.metrics(), `${M}events_dropped_total`)).toBe(0);
    expectNotAhead(await clientEvent());
  }, 60_000);
});
