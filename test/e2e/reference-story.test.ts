// The reference story end to end, with real parts only: a real kube-apiserver + etcd, the shipped RBAC
// applied with kubectl, the agent as its own process with a ServiceAccount token, drops appended to a real
// journal, and the result read back with `kubectl describe pod` / `kubectl get events`.

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  deletePod,
  kubectl,
  setPodRunning,
  shippedAgentToken,
  tokenKubeconfig,
} from '../support/cluster.ts';
import { appendJournal, type JournalEntry } from '../support/journal.ts';
import { type AgentProcess, metricValue, startAgent, waitFor } from './agent-process.ts';

const CLIENT = { name: 'netperf-client-42010a80017f', ip: '10.4.1.6', role: 'netperf-client' };
const SERVER = { name: 'netperf-server-42010a80017f', ip: '10.4.0.16', role: 'netperf-server' };
const NODE = 'gke-cluster-k8s-default-pool-d4371b02-9s00';

function drop(src: string, dst: string, sport: number, timeMs = Date.now()): JournalEntry {
  return {
    hostname: NODE,
    realtimeUs: timeMs * 1000,
    message: `calico-packet: IN=cali6e7bb88b982 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=36387 DF PROTO=TCP SPT=${sport} DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0 `,
  };
}

interface EventJson {
  involvedObject: { name: string };
  reason: string;
  type: string;
  message: string;
  count: number;
  source: { component: string; host: string };
}

async function events(c: Cluster, namespace: string): Promise<EventJson[]> {
  return (
    JSON.parse(await kubectl(c, ['get', 'events', '-n', namespace, '-o', 'json'])) as { items: EventJson[] }
  ).items;
}

describe('reference story: netperf blocked by a Calico policy', () => {
  let cluster: Cluster;
  let agentKubeconfig: string;
  let agent: AgentProcess | undefined;
  let story: string | undefined;

  beforeAll(async () => {
    cluster = connect(inject('kubeconfig'));
    agentKubeconfig = await tokenKubeconfig(cluster, await shippedAgentToken(cluster));
  });

  afterEach(async () => {
    expect(await agent?.stop()).toBe(0);
    agent = undefined;
    // Both tests give the pods the same IPs; a leftover pair would make the next lookup ambiguous.
    if (story) for (const pod of [CLIENT, SERVER]) await deletePod(cluster, story, pod.name);
    story = undefined;
  });

  /** Both pods, those in `runningNow` reported Running (the kubelet's part: there is no kubelet here). */
  async function netperf(runningNow = [CLIENT, SERVER]): Promise<string> {
    const namespace = await createNamespace(cluster);
    for (const pod of [CLIENT, SERVER]) {
      await createPod(cluster, {
        namespace,
        name: pod.name,
        nodeName: NODE,
        labels: { app: 'netperf-operator', 'netperf-role': pod.role },
      });
      if (runningNow.includes(pod)) await reportRunning(namespace, pod);
    }
    story = namespace;
    return namespace;
  }

  async function reportRunning(namespace: string, pod: typeof CLIENT): Promise<void> {
    await setPodRunning(cluster, namespace, pod.name, { podIPs: [pod.ip], hostIP: '10.128.0.2' });
  }

  async function agentOn(journal: string, env: Record<string, string>): Promise<AgentProcess> {
    agent = await startAgent({
      KUBECONFIG: agentKubeconfig,
      JOURNAL_DIRECTORY: journal,
      CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
      NODE_NAME: NODE,
      IPTABLES_LOG_PREFIX: 'calico-packet',
      ...env,
    });
    return agent;
  }

  it('POD_IDENTIFIER=name: both pods get their PacketDrop warning, counted, within seconds', async () => {
    const namespace = await netperf();
    const journal = await mkdtemp(join(tmpdir(), 'journal-'));
    const file = join(journal, 'system.journal');
    await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
    const running = await agentOn(journal, { POD_IDENTIFIER: 'name', REPEATED_EVENTS_INTERVAL_MINUTES: '0' });

    const appended = Date.now();
    await appendJournal(file, [drop(CLIENT.ip, SERVER.ip, 60353)]);
    await waitFor(async () => (await events(cluster, namespace)).length === 2, 10_000, 'two events');
    const latencyMs = Date.now() - appended;

    const client = await kubectl(cluster, ['describe', 'pod', CLIENT.name, '-n', namespace]);
    expect(client).toMatch(
      new RegExp(
        `Warning\\s+PacketDrop\\s+.*kube-iptables-tailer\\s+Packet dropped when sending traffic to ${SERVER.name} \\(10\\.4\\.0\\.16\\) on port 12865/TCP`,
      ),
    );
    const server = await kubectl(cluster, ['describe', 'pod', SERVER.name, '-n', namespace]);
    expect(server).toMatch(
      new RegExp(
        `Warning\\s+PacketDrop\\s+.*kube-iptables-tailer\\s+Packet dropped when receiving traffic from ${CLIENT.name} \\(10\\.4\\.1\\.6\\) on port 12865/TCP`,
      ),
    );

    // Two more drops of the same flow: the same two Events, count 3 (aggregated by PATCH, not new Events).
    await appendJournal(file, [drop(CLIENT.ip, SERVER.ip, 60354), drop(CLIENT.ip, SERVER.ip, 60355)]);
    const counted = await waitFor(
      async () => {
        const list = await events(cluster, namespace);
        return list.length === 2 && list.every((event) => event.count === 3) && list;
      },
      10_000,
      'counts of 3',
    );
    for (const event of counted) {
      expect(event).toMatchObject({ type: 'Warning', reason: 'PacketDrop' });
      expect(event.source).toEqual({ component: 'kube-iptables-tailer', host: NODE });
    }
    const metrics = await running.metrics();
    expect(metricValue(metrics, 'packet_drops_count', `src="${CLIENT.name}",dst="${SERVER.name}"`)).toBe(3);
    expect(metricValue(metrics, 'kube_iptables_tailer_events_created_total')).toBe(2);
    // Drops that arrive while an earlier write is pending merge into it, so 2 to 4 PATCHes carry the +2.
    const patched = metricValue(metrics, 'kube_iptables_tailer_events_patched_total');
    expect(patched).toBeGreaterThanOrEqual(2);
    expect(patched).toBeLessThanOrEqual(4);
    console.log(`reference story: journal append to both Events readable in ${latencyMs} ms`);
  });

  it('POD_IDENTIFIER=label names the peers by the label value; repeats within the interval post nothing', async () => {
    const namespace = await netperf();
    const journal = await mkdtemp(join(tmpdir(), 'journal-'));
    const file = join(journal, 'system.journal');
    await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
    const running = await agentOn(journal, { POD_IDENTIFIER: 'label', POD_IDENTIFIER_LABEL: 'netperf-role' });

    await appendJournal(file, [drop(CLIENT.ip, SERVER.ip, 60353), drop(CLIENT.ip, SERVER.ip, 60354)]);
    const list = await waitFor(
      async () => {
        const all = await events(cluster, namespace);
        return all.length === 2 && all;
      },
      10_000,
      'two events',
    );
    const messages = list.map((event) => `${event.involvedObject.name}: ${event.message}`).sort();
    expect(messages).toEqual([
      `${CLIENT.name}: Packet dropped when sending traffic to netperf-server (10.4.0.16) on port 12865/TCP`,
      `${SERVER.name}: Packet dropped when receiving traffic from netperf-client (10.4.1.6) on port 12865/TCP`,
    ]);
    // The second line is within REPEATED_EVENTS_INTERVAL_MINUTES (default 2) of the first: suppressed.
    await waitFor(
      async () => metricValue(await running.metrics(), 'kube_iptables_tailer_drops_suppressed_total') === 1,
      5_000,
      'the repeat to be counted as suppressed',
    );
    expect(list.every((event) => event.count === 1)).toBe(true);
  });

  it('a client reported Running only after its first drop still gets its event', async () => {
    const namespace = await netperf([SERVER]);
    const journal = await mkdtemp(join(tmpdir(), 'journal-'));
    const file = join(journal, 'system.journal');
    await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
    const tailer = await agentOn(journal, { POD_IDENTIFIER: 'name', REVERSE_DNS: 'false' });

    // The SYN and its retransmission, before the kubelet has reported the client Running.
    await appendJournal(file, [drop(CLIENT.ip, SERVER.ip, 60353)]);
    await waitFor(async () => (await events(cluster, namespace)).length === 1, 10_000, 'the server event');
    await appendJournal(file, [drop(CLIENT.ip, SERVER.ip, 60353)]);
    await waitFor(
      async () => metricValue(await tailer.metrics(), 'kube_iptables_tailer_drops_suppressed_total') === 1,
      5_000,
      'the retransmission to be a repeat',
    );

    await reportRunning(namespace, CLIENT);
    const list = await waitFor(
      async () => {
        const all = await events(cluster, namespace);
        return all.length === 2 && all;
      },
      10_000,
      'the client event',
    );
    expect(list.map((event) => `${event.involvedObject.name}: ${event.message}`).sort()).toEqual([
      `${CLIENT.name}: Packet dropped when sending traffic to ${SERVER.name} (10.4.0.16) on port 12865/TCP`,
      `${SERVER.name}: Packet dropped when receiving traffic from 10.4.1.6 on port 12865/TCP`,
    ]);
    const metrics = await tailer.metrics();
    expect(metricValue(metrics, 'kube_iptables_tailer_drops_posted_late_total')).toBe(1);
    expect(metricValue(metrics, 'packet_drops_count', `src="10.4.1.6",dst="${SERVER.name}"`)).toBe(1);
  });
});
