/**
 * A drop storm, end to end: 1,000 drops/s for 60 s between random pairs of 1,000 Running pods, appended
 * to a kern.log-style file (file mode) and read by the live agent (`node agent/cli.ts run`, its own
 * process, default rates and queue, the DaemonSet's Node options) against a private real kube-apiserver
 * and etcd. Meanwhile, and right
 * after, drops between fresh pairs (pods outside the storm, with no Event yet) are appended; for each, the
 * time from its append until the client's Event is in the API is measured (polled every 50 ms). Prints one
 * JSON line: the agent's CPU seconds and peak RSS, the fresh-pair latencies, Events written, the agent's
 * accounting, and the API server's and etcd's CPU seconds, from the storm's start to 20 s after its end.
 *
 *   node test/bench/storm.ts [OTHER_CHECKOUT]   the agent of another checkout, e.g. a clean main
 */

import { randomInt } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentProcess, metricSum, metricValue, startAgent } from '../e2e/agent-process.ts';
import {
  type Cluster,
  createNamespace,
  createPod,
  type PrivateControlPlane,
  privateControlPlane,
  setPodRunning,
} from '../support/cluster.ts';
import { daemonSetMemory } from '../support/daemonset.ts';
import { cpuSeconds, peakRssBytes, percentile, pidsWith, pool, round } from './measure.ts';

const STORM_PODS = 1000;
const FRESH_PAIRS = 10;
const RATE = 1000;
const SECONDS = 60;
const TICK_MS = 50;
const AFTER_MS = 20_000;
/** A fresh pair's Event not seen this long after the storm counts as missed. */
const CAP_MS = 120_000;
const TARGET_P99_MS = 2000;
const M = 'kube_iptables_tailer_';

const root = process.argv[2];

interface Pod {
  name: string;
  namespace: string;
  ip: string;
}

async function runningPods(c: Cluster, prefix: string, count: number, namespaces: string[]): Promise<Pod[]> {
  const pods: Pod[] = [];
  await pool(count, 20, async (i) => {
    const pod = { name: `${prefix}-${i}`, namespace: namespaces[i % namespaces.length]!, ip: '' };
    pod.ip = prefix === 'storm' ? `10.60.${i >> 8}.${i & 255}` : `10.61.0.${i + 1}`;
    await createPod(c, { namespace: pod.namespace, name: pod.name, nodeName: 'node-a' });
    await setPodRunning(c, pod.namespace, pod.name, { podIPs: [pod.ip], hostIP: '10.128.0.2' });
    pods[i] = pod;
  });
  return pods;
}

function kernLine(src: string, dst: string, sport: number, dport: number): string {
  return `${new Date().toISOString()} node-a kernel: calico-packet: IN=cali1 OUT=eth0 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=${dport} WINDOW=42600 RES=0x00 SYN URGP=0\n`;
}

function byLabel(text: string, name: string): Record<string, number> {
  const result: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = new RegExp(`^${name}\\{\\w+="([^"]*)"\\} (\\S+)$`).exec(line);
    if (match) result[match[1]!] = Number(match[2]);
  }
  return result;
}

async function planeCpu(plane: PrivateControlPlane): Promise<number> {
  let total = 0;
  for (const pid of await pidsWith(plane.dir)) total += await cpuSeconds(pid).catch(() => 0);
  return total;
}

async function storm(plane: PrivateControlPlane): Promise<void> {
  const c = plane.cluster;
  const namespaces = await Promise.all(Array.from({ length: 10 }, () => createNamespace(c)));
  const freshNamespace = await createNamespace(c);
  const pods = await runningPods(c, 'storm', STORM_PODS, namespaces);
  const fresh = await runningPods(c, 'fresh', 2 * FRESH_PAIRS, [freshNamespace]);
  const dir = await mkdtemp(join(tmpdir(), 'storm-bench-'));
  const log = join(dir, 'kern.log');
  await writeFile(log, '');
  let agent: AgentProcess | undefined;
  try {
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, c.kc.exportConfig(), { mode: 0o600 });
    agent = await startAgent(
      {
        KUBECONFIG: kubeconfig,
        IPTABLES_LOG_PATH: log,
        CHECKPOINT_DIRECTORY: join(dir, 'state'),
        NODE_NAME: 'node-a',
        LOG_LEVEL: 'warn',
        ...(await daemonSetMemory()).nodeOptions,
      },
      root,
    );
    const pid = agent.child.pid!;
    const agentCpu0 = await cpuSeconds(pid);
    const planeCpu0 = await planeCpu(plane);

    const latencies: number[] = [];
    let missed = 0;
    const watches: Promise<void>[] = [];
    let stormEnd = Number.POSITIVE_INFINITY;
    const freshDrop = async (k: number): Promise<void> => {
      const [client, server] = [fresh[2 * k]!, fresh[2 * k + 1]!];
      await appendFile(log, kernLine(client.ip, server.ip, 40000 + k, 9090));
      const appended = performance.now();
      for (;;) {
        const { items } = await c.core.listNamespacedEvent({ namespace: freshNamespace });
        if (items.some((e) => e.involvedObject.name === client.name && e.message?.includes(server.ip))) {
          latencies.push(performance.now() - appended);
          return;
        }
        if (performance.now() > stormEnd + CAP_MS) {
          missed++;
          return;
        }
        await sleep(50);
      }
    };

    const started = performance.now();
    let lines = 0;
    const freshEvery = (SECONDS * 1000) / (FRESH_PAIRS - 1);
    let nextFresh = 0;
    for (let tick = 0; tick < (SECONDS * 1000) / TICK_MS; tick++) {
      const due = started + tick * TICK_MS;
      if (performance.now() < due) await sleep(due - performance.now());
      let text = '';
      for (let i = 0; i < (RATE * TICK_MS) / 1000; i++) {
        const a = randomInt(STORM_PODS);
        const b = (a + 1 + randomInt(STORM_PODS - 1)) % STORM_PODS;
        text += kernLine(pods[a]!.ip, pods[b]!.ip, 1024 + (lines++ % 60_000), 8080);
      }
      await appendFile(log, text);
      if (performance.now() - started >= (nextFresh + 1) * freshEvery && nextFresh < FRESH_PAIRS - 2) {
        watches.push(freshDrop(nextFresh++));
      }
    }
    stormEnd = performance.now();
    const stormSeconds = (stormEnd - started) / 1000;
    watches.push(freshDrop(FRESH_PAIRS - 2));
    await sleep(1000);
    watches.push(freshDrop(FRESH_PAIRS - 1));
    await sleep(Math.max(0, stormEnd + AFTER_MS - performance.now()));
    const agentCpu = (await cpuSeconds(pid)) - agentCpu0;
    const apiCpu = (await planeCpu(plane)) - planeCpu0;
    const peak = await peakRssBytes(pid);
    const metrics = await agent.metrics();
    await Promise.all(watches);

    let events = 0;
    let counted = 0;
    for (const namespace of [...namespaces, freshNamespace]) {
      const { items } = await c.core.listNamespacedEvent({ namespace });
      events += items.length;
      counted += items.reduce((sum, e) => sum + (e.count ?? 0), 0);
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const p99 = sorted.length > 0 ? round(percentile(sorted, 99), 0) : null;
    process.stdout.write(
      `${JSON.stringify({
        bench: 'storm',
        agent: root ?? 'this checkout',
        lines,
        linesPerSecond: round(lines / stormSeconds, 0),
        agentCpuSeconds: round(agentCpu, 2),
        agentPeakRssMiB: round(peak / 2 ** 20, 1),
        freshPairs: FRESH_PAIRS,
        freshP50Ms: sorted.length > 0 ? round(percentile(sorted, 50), 0) : null,
        freshP99Ms: p99,
        freshMaxMs: sorted.length > 0 ? round(sorted.at(-1)!, 0) : null,
        freshMissed: missed,
        eventsInApi: events,
        countsInApi: counted,
        apiServerEtcdCpuSeconds: round(apiCpu, 2),
        linesParsed: metricValue(metrics, `${M}lines_parsed_total`),
        eventsCreated: metricValue(metrics, `${M}events_created_total`),
        eventsPatched: metricValue(metrics, `${M}events_patched_total`),
        dropSides: byLabel(metrics, `${M}drop_sides_total`),
        eventsDropped: byLabel(metrics, `${M}events_dropped_total`),
        suppressed: metricValue(metrics, `${M}drops_suppressed_total`),
        readWaitSeconds: metricSum(metrics, `${M}read_wait_seconds_total`),
        queueDepth: metricValue(metrics, `${M}queue_depth`),
        target_p99_ms: TARGET_P99_MS,
        met: p99 !== null && p99 <= TARGET_P99_MS && missed === 0,
      })}\n`,
    );
  } finally {
    await agent?.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

let plane: PrivateControlPlane | undefined;
try {
  plane = await privateControlPlane();
  await storm(plane);
} finally {
  await plane?.down();
}
