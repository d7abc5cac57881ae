// The agent under a flood of drops, as its own process with the shipped RBAC, against the real
// kube-apiserver, reading a real journal: a scan at one pod must not silence the node, news must get
// through a storm within 2 s, SIGTERM must end the process on time whatever the API server does (and a
// restart must count exactly what was not written), and a line dated in the future must not freeze Events.

import { randomInt } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoreV1Event } from '@kubernetes/client-node';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
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
import { appendJournal, type JournalEntry } from '../support/journal.ts';
import { type AgentProcess, metricSum, metricValue, waitFor } from './agent-process.ts';
import { agentLauncher, journalAgentEnv, journalDir } from './scenario.ts';

const M = 'kube_iptables_tailer_';
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

beforeAll(async () => {
  c = connect(inject('kubeconfig'));
  kubeconfig = await tokenKubeconfig(c, await shippedAgentToken(c));
});

afterEach(async () => {
  const pods = created.splice(0);
  for (let i = 0; i < pods.length; i += 20) {
    await Promise.allSettled(pods.slice(i, i + 20).map((p) => deletePod(c, p.namespace, p.name)));
  }
});

async function runningPods(namespace: string, names: readonly string[]): Promise<Pod[]> {
  const pods: Pod[] = [];
  for (let i = 0; i < names.length; i += 10) {
    const batch = await Promise.all(
      names.slice(i, i + 10).map(async (name) => {
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

/** A kernel drop line in the journal, at `timeUs` (distinct per line, so a restart can tell them apart). */
function line(src: string, dst: string, dport: number, sport: number, timeUs?: number): JournalEntry {
  return {
    message: `calico-packet: IN=cali1 OUT=eth0 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=${dport} WINDOW=42600 RES=0x00 SYN URGP=0`,
    ...(timeUs === undefined ? {} : { realtimeUs: timeUs }),
  };
}

async function eventsOf(namespace: string): Promise<CoreV1Event[]> {
  return (await c.core.listNamespacedEvent({ namespace })).items;
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
    const [victim, client, server] = await runningPods(namespace, ['victim', 'client', 'server']);
    const { dir, file } = await journalDir();
    // A burst that covers the victim's 10 own Events and the combined one keeps the test short; the
    // isolation it proves does not depend on it.
    const agent = await agentWith({
      ...(await journalAgentEnv(kubeconfig, dir)),
      EVENT_BURST_PER_POD: '20',
      REPEATED_EVENTS_INTERVAL_MINUTES: '2',
    });
    const scan = Array.from({ length: 5000 }, (_, n) =>
      line(`198.18.${n >> 8}.${n & 255}`, victim!.ip, 443, 40000 + (n % 20000)),
    );
    await appendJournal(file, scan);
    const appended = performance.now();
    await appendJournal(file, [line(client!.ip, server!.ip, 8080, 5555)]);
    await waitFor(
      async () => (await eventsOf(namespace)).filter((e) => e.involvedObject.name !== 'victim').length === 2,
      2_000 + (performance.now() - appended),
      'the other pair’s two Events within 2 s',
    );
    const victimEvents = await waitFor(
      async () => {
        const list = (await eventsOf(namespace)).filter((e) => e.involvedObject.name === 'victim');
        const total = list.reduce((n, e) => n + (e.count ?? 0), 0);
        return list.length === 11 && total === 5000 ? list : null;
      },
      30_000,
      'the victim’s 11 Events counting 5,000 drops',
    );
    const combined = victimEvents.filter((e) => e.message?.includes('sources'));
    expect(combined.map((e) => e.message)).toEqual([
      expect.stringMatching(
        /^Packet dropped when receiving traffic from 4,990 sources on port 443\/TCP \(e\.g\. 198\.18\.0\.\d+, /,
      ),
    ]);
    expect(combined[0]?.count).toBe(4990);
    await expectAccounted(agent, 5002);
  }, 90_000);

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
    const { dir, file } = await journalDir();
    const agent = await agentWith({
      ...(await journalAgentEnv(kubeconfig, dir)),
      PACKET_DROP_EXPIRATION_MINUTES: '1',
    });
    const latencies: number[] = [];
    const freshDrop = async (k: number) => {
      const [from, to] = [fresh[2 * k]!, fresh[2 * k + 1]!];
      await appendJournal(file, [line(from.ip, to.ip, 9090, 7000 + k)]);
      const at = performance.now();
      await waitFor(
        async () => (await eventsOf(namespace)).some((e) => e.involvedObject.name === from.name),
        10_000,
        `fresh pair ${k}`,
      );
      latencies.push(performance.now() - at);
    };
    let lines = 0;
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
      if (second === 5 || second === 10) await freshDrop(second / 5 - 1);
    }
    await freshDrop(2);
    console.log(`overload: fresh-pair latencies ${latencies.map(Math.round).join(', ')} ms`);
    expect(Math.max(...latencies)).toBeLessThan(2_000);
    await waitFor(
      async () => metricValue(await agent.metrics(), `${M}lines_parsed_total`) === lines + 3,
      5_000,
      'every storm line read',
    );
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
      const slow = join(await mkdtemp(join(tmpdir(), 'kubeconfig-')), 'kubeconfig');
      await writeFile(slow, proxy.kubeconfig(await shippedAgentToken(c)), { mode: 0o600 });
      const { dir, file } = await journalDir();
      const env = await journalAgentEnv(slow, dir);
      // Five senders with 25 peers each: their drops past the 10th peer are combined. The first 600 lines
      // are written and checkpointed while the API server is fast; the rest meet a slow one and SIGTERM.
      // The restarted agent re-reads only those, and must combine them into the Events they went to
      // before (the combining state it saved), not give their first peers Events of their own.
      const first = await agentWith({ ...env, SHUTDOWN_GRACE_SECONDS: '2', EVENT_BURST_PER_POD: '100' });
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
      // The checkpoint is saved at most once a second.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      proxy.add({ url: new RegExp(`^/api/v1/namespaces/${namespace}/events`), holdResponseMs: 3_000 });
      await appendJournal(file, lines.slice(600));
      await waitFor(
        async () => metricValue(await first.metrics(), `${M}lines_parsed_total`) === 2000,
        20_000,
        'the flood read',
      );
      expect(metricValue(await first.metrics(), `${M}queue_depth`)).toBeGreaterThan(0);
      const killed = performance.now();
      await first.stop('SIGTERM');
      const exitMs = performance.now() - killed;
      console.log(`overload: SIGTERM to exit ${Math.round(exitMs)} ms with SHUTDOWN_GRACE_SECONDS=2`);
      expect(exitMs).toBeLessThan(3_000);

      // Generous rates, so the restarted agent writes the senders' 11 Events each at once.
      const second = await agentWith({
        ...env,
        KUBECONFIG: kubeconfig,
        EVENT_RATE_LIMIT_PER_SECOND: '200',
        EVENT_BURST_PER_POD: '100',
      });
      const total = async () => (await eventsOf(namespace)).reduce((n, e) => n + (e.count ?? 0), 0);
      await waitFor(
        async () => (await total()) >= 4000,
        60_000,
        'every side counted after the restart',
      ).catch(async (err: unknown) => {
        console.log(`overload: counted ${await total()} of 4000 after the restart`, await second.metrics());
        throw err;
      });
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(await total()).toBe(4000);
      expect((await eventsOf(namespace)).some((e) => e.message?.includes(' destinations on port '))).toBe(
        true,
      );
      expect(metricValue(await second.metrics(), `${M}queue_depth`)).toBe(0);
    } finally {
      proxy.close();
    }
  }, 150_000);

  it('takes a line dated in 2035 as now, and a 2035 mark on an existing Event never blocks later drops', async () => {
    const namespace = await createNamespace(c);
    const [client, server, other, peer] = await runningPods(namespace, ['client', 'server', 'other', 'peer']);
    // An Event an older agent wrote from a line dated 2035, with the name this agent gives it.
    const otherDrop = dropOf({ src: other!.ip, dst: peer!.ip, dstPort: 8080 });
    const message = dropMessage('send', otherDrop, namespace);
    const otherRef = podRef({ namespace, name: 'other', uid: other!.uid, ips: [other!.ip] });
    const key = aggregationKey(
      {
        pod: otherRef,
        direction: 'send',
        message,
        subject: message,
        combined: false,
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
        involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace, name: 'other', uid: other!.uid },
        type: 'Warning',
        reason: 'PacketDrop',
        message,
        count: 5,
        firstTimestamp: new Date(future),
        lastTimestamp: new Date(future),
        source: { component: 'kube-iptables-tailer', host: 'node-a' },
      },
    });
    const { dir, file } = await journalDir();
    const env = await journalAgentEnv(kubeconfig, dir);
    const first = await agentWith(env);
    const now = () => Date.now() * 1000;
    await appendJournal(file, [line(client!.ip, server!.ip, 8080, 1, future * 1000)]);
    await appendJournal(
      file,
      [1, 2, 3].map((n) => line(client!.ip, server!.ip, 8080, 1 + n, now() + n)),
    );
    await appendJournal(file, [line(other!.ip, peer!.ip, 8080, 1)]);
    const clientEvent = async () =>
      (await eventsOf(namespace)).find((e) => e.involvedObject.name === 'client');
    const otherEvent = async () =>
      (await eventsOf(namespace)).find((e) => e.involvedObject.name === 'other' && e.count !== undefined);
    await waitFor(async () => (await clientEvent())?.count === 4, 20_000, 'the client Event counting 4');
    await waitFor(async () => (await otherEvent())?.count === 6, 20_000, 'the old Event counting on');
    for (const event of [await clientEvent(), await otherEvent()]) {
      expect(event?.lastTimestamp?.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
    }
    expect(metricValue(await first.metrics(), `${M}drops_future_dated_total`)).toBe(1);

    await first.stop('SIGTERM');
    await agentWith(env);
    await appendJournal(
      file,
      [4, 5].map((n) => line(client!.ip, server!.ip, 8080, 10 + n, now() + n)),
    );
    await waitFor(
      async () => (await clientEvent())?.count === 6,
      20_000,
      'the client Event counting on after a restart',
    );
  }, 90_000);
});
