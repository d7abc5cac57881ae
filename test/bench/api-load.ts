/**
 * What each pod watch mode costs the API server and the node (POD_WATCH_SCOPE=node, the default, and
 * cluster, the original's way), measured on a private real kube-apiserver + etcd holding N Running pods over
 * N/30 nodes (30 pods a node, as 150,000 pods on 5,000 nodes), with AGENTS agents running at once for
 * different nodes: processes running the build the image ships (dist/cli.js) with the DaemonSet's
 * NODE_OPTIONS. Each agent talks to the API server through a proxy of its own that counts requests and the
 * bytes of the answers. For each N and each mode, one JSON line:
 *
 * - start: bytes of the pod and node lists an agent receives at start, seconds until every agent is ready
 *   with its pod index full;
 * - memory of an agent idle for 30 s: RSS, and V8 heap after a full collection (mean over the agents);
 * - churn: CHURN label changes spread over the pods of every node; pod watch events each agent received
 *   (mean), and the API server's + etcd's CPU seconds meanwhile;
 * - storm: each agent's journal gets PEERS drop lines, each from a different pod of another node to a pod of
 *   its own: seconds until every drop is located, lookups by outcome (node mode), lookups per second, pod
 *   list requests the proxies saw, and API server + etcd CPU seconds meanwhile;
 * - heap again after the storm, with the lookup cache's entries.
 *
 * Bytes are as the API server sent them: it compresses answers over 128 KiB for clients that accept gzip,
 * as client-node does, so a small list can cost more bytes than a large one.
 *
 * Then one line of floors measured the same way: a bare Node process, one that has only imported
 * @kubernetes/client-node, and one that has imported every runtime dependency, all with the DaemonSet's
 * NODE_OPTIONS: what an idle agent holds above the last is the agent's own.
 *
 *   node test/bench/api-load.ts [N ...]       (default: 1000 20000)
 */

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lookupFigures } from '../../agent/tools/doctor/lookups-check.ts';
import { type AgentProcess, metricValue, startAgent, waitFor } from '../e2e/agent-process.ts';
import {
  type Cluster,
  createNamespace,
  createNode,
  createPod,
  type PrivateControlPlane,
  privateControlPlane,
  setPodRunning,
  shippedAgentToken,
} from '../support/cluster.ts';
import { daemonSetMemory } from '../support/daemonset.ts';
import { FaultProxy } from '../support/fault-proxy.ts';
import { appendJournal, tempDir } from '../support/journal.ts';
import { buildDist, cpuSeconds, heapAfterGc, pidsWith, pool, round, snapshotFlags } from './measure.ts';

const PODS_PER_NODE = 30;
const AGENTS = 3;
const NAMESPACES = 20;
const IN_FLIGHT = 20;
const CHURN = 600;
const PEERS = 200;
const SETTLE_MS = 2000;
const IDLE_MS = 30_000;
const M = 'kube_iptables_tailer_';
const MODES = ['node', 'cluster'] as const;
type Mode = (typeof MODES)[number];

const scales = process.argv.slice(2).map(Number);
if (scales.some((n) => !Number.isInteger(n) || n < PODS_PER_NODE * AGENTS)) {
  throw new Error(`usage: api-load.ts [N ...], each N a whole number of at least ${PODS_PER_NODE * AGENTS}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number): number => round(bytes / 2 ** 20, 1);
const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

/**
 * The cluster's pods: pod i runs on node floor(i / PODS_PER_NODE), with an address of its own, so that a
 * cluster grown to a larger N keeps 30 pods on every node, the agents' included.
 */
interface Layout {
  pods: number;
  nodes: number;
  namespaces: string[];
}

const podIp = (i: number): string => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const nodeName = (n: number): string => `node-${n}`;
const podName = (i: number): string => `pod-${i}`;
const namespaceOf = (layout: Layout, i: number): string => layout.namespaces[i % layout.namespaces.length]!;
const nodeOf = (i: number): number => Math.floor(i / PODS_PER_NODE);

/** Grows the cluster to `layout.pods` Running pods over `layout.nodes` nodes, from `from` pods and `fromNodes` nodes. */
async function grow(c: Cluster, layout: Layout, from: number, fromNodes: number): Promise<void> {
  await pool(layout.nodes - fromNodes, IN_FLIGHT, async (k) => {
    const n = fromNodes + k;
    await createNode(c, nodeName(n), [{ type: 'InternalIP', address: `10.128.${n >> 8}.${n & 255}` }]);
  });
  await pool(layout.pods - from, IN_FLIGHT, async (k) => {
    const i = from + k;
    const namespace = namespaceOf(layout, i);
    const node = nodeOf(i);
    await createPod(c, {
      namespace,
      name: podName(i),
      nodeName: nodeName(node),
      labels: { app: `app-${i % 100}` },
    });
    await setPodRunning(c, namespace, podName(i), {
      podIPs: [podIp(i)],
      hostIP: `10.128.${node >> 8}.${node & 255}`,
    });
  });
}

interface Agent {
  process: AgentProcess;
  proxy: FaultProxy;
  node: number;
  journal: string;
  snapshots: string;
}

async function startAgents(c: Cluster, token: string, mode: Mode, entry: string): Promise<Agent[]> {
  const { nodeOptions } = await daemonSetMemory();
  return Promise.all(
    Array.from({ length: AGENTS }, async (_, node) => {
      const proxy = await FaultProxy.start(c);
      const dir = await tempDir('api-load');
      const kubeconfig = join(dir, 'kubeconfig');
      await writeFile(kubeconfig, proxy.kubeconfig(token));
      const journal = join(dir, 'journal', 'system.journal');
      await appendJournal(journal, [{ message: 'Linux version 6.1.0 (boot)' }]);
      const snapshots = await mkdtemp(join(tmpdir(), 'api-load-heap-'));
      const agentProcess = await startAgent(
        {
          KUBECONFIG: kubeconfig,
          JOURNAL_DIRECTORY: join(dir, 'journal'),
          CHECKPOINT_DIRECTORY: join(dir, 'checkpoint'),
          NODE_NAME: nodeName(node),
          POD_WATCH_SCOPE: mode,
          LOG_LEVEL: 'warn',
          NODE_OPTIONS: `${nodeOptions.NODE_OPTIONS ?? ''} ${snapshotFlags(snapshots)}`,
        },
        undefined,
        entry,
      );
      return { process: agentProcess, proxy, node, journal, snapshots };
    }),
  );
}

async function stopAgents(agents: readonly Agent[]): Promise<void> {
  await Promise.all(
    agents.map(async (agent) => {
      await agent.process.stop();
      await agent.proxy.close();
      await rm(agent.snapshots, { recursive: true, force: true });
    }),
  );
}

const scrape = (agents: readonly Agent[]): Promise<string[]> =>
  Promise.all(agents.map((a) => a.process.metrics()));

/** The pods an agent's index must hold: its node's, or every one. */
const expectedIndexed = (layout: Layout, mode: Mode, node: number): number =>
  mode === 'cluster' ? layout.pods : Math.min(PODS_PER_NODE, layout.pods - node * PODS_PER_NODE);

async function controlPlaneCpu(plane: PrivateControlPlane): Promise<number> {
  let total = 0;
  for (const pid of await pidsWith(plane.dir)) total += await cpuSeconds(pid).catch(() => 0);
  return total;
}

/** The agent's list requests (not its watches) of pods or nodes, as its proxy saw them. */
const lists = (agent: Agent, resource: 'pods' | 'nodes') =>
  agent.proxy.seen('GET', new RegExp(`^/api/v1/${resource}\\?`)).filter((r) => !/[?&]watch=/.test(r.url));

const listedBytes = (agents: readonly Agent[], resource: 'pods' | 'nodes'): number =>
  mean(agents.map((a) => lists(a, resource).reduce((sum, r) => sum + r.bytes, 0)));

/** Mean RSS of the agents: read before any heap snapshot, which leaves RSS it does not hand back. */
async function rssMiB(agents: readonly Agent[]): Promise<number> {
  const texts = await scrape(agents);
  return mib(mean(texts.map((text) => metricValue(text, 'process_resident_memory_bytes'))));
}

async function heapAfterGcMiB(agents: readonly Agent[]): Promise<number> {
  const heaps: number[] = [];
  for (const agent of agents) heaps.push(await heapAfterGc(agent.process, agent.snapshots));
  return mib(mean(heaps));
}

/** Every agent's pod watch events, once no agent has received one for SETTLE_MS. */
async function settledWatchEvents(agents: readonly Agent[]): Promise<number[]> {
  const events = async (): Promise<number[]> =>
    (await scrape(agents)).map((t) =>
      metricValue(t, `${M}api_watch_total`, 'resource="pods",counter="events"'),
    );
  let last = await events();
  for (;;) {
    await sleep(SETTLE_MS);
    const now = await events();
    if (now.every((n, k) => n === last[k])) return now;
    last = now;
  }
}

async function measureMode(
  plane: PrivateControlPlane,
  layout: Layout,
  mode: Mode,
  token: string,
  entry: string,
): Promise<void> {
  const c = plane.cluster;
  const started = performance.now();
  const agents = await startAgents(c, token, mode, entry);
  try {
    await waitFor(
      async () => {
        const texts = await scrape(agents);
        return agents.every(
          (a, k) => metricValue(texts[k]!, `${M}pods_indexed`) === expectedIndexed(layout, mode, a.node),
        );
      },
      300_000,
      'every pod index full',
    );
    const readySeconds = round((performance.now() - started) / 1000, 1);
    const listBytes = listedBytes(agents, 'pods');
    const nodeListBytes = listedBytes(agents, 'nodes');
    // As the DaemonSet's agents spend most of their life: started a while ago, nothing to do.
    await sleep(IDLE_MS);
    const idle = { rssMiB: await rssMiB(agents), heapAfterGcMiB: await heapAfterGcMiB(agents) };

    // Churn: label changes on pods of every node, in a small pool; values new to this run, as a patch that
    // leaves a pod as it was makes no event.
    const eventsBefore = await settledWatchEvents(agents);
    const cpuBeforeChurn = await controlPlaneCpu(plane);
    await pool(CHURN, IN_FLIGHT, async (k) => {
      const i = Math.floor((k * layout.pods) / CHURN);
      await c.core.patchNamespacedPod({
        name: podName(i),
        namespace: namespaceOf(layout, i),
        body: [{ op: 'replace', path: '/metadata/labels/app', value: `churn-${layout.pods}-${mode}-${k}` }],
      });
    });
    const eventsAfter = await settledWatchEvents(agents);
    const churnCpu = (await controlPlaneCpu(plane)) - cpuBeforeChurn;
    const watchEventsPerAgent = mean(eventsAfter.map((after, k) => after - eventsBefore[k]!));
    // Anything but one list and one watch per resource since the start means the pod index was rebuilt.
    const watchActivity = (await scrape(agents)).map((text) =>
      text
        .split('\n')
        .filter((line) => line.startsWith(`${M}api_watch_total{`))
        .map((line) => line.slice(`${M}api_watch_total`.length))
        .join(' '),
    );

    // Storm: distinct remote peers (pods of nodes no agent runs on) dropping traffic to a local pod.
    const listsBefore = agents.map((a) => lists(a, 'pods').length);
    const cpuBeforeStorm = await controlPlaneCpu(plane);
    const stormStart = performance.now();
    const remote = Array.from({ length: layout.pods }, (_, i) => i).filter((i) => nodeOf(i) >= AGENTS);
    await Promise.all(
      agents.map((agent, k) => {
        const local = podIp(agent.node * PODS_PER_NODE);
        const lines = Array.from({ length: PEERS }, (_, p) => {
          const peer = podIp(remote[(k * PEERS + p) % remote.length]!);
          return {
            hostname: nodeName(agent.node),
            message: `calico-packet: IN=cali1 OUT=eth0 SRC=${peer} DST=${local} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=42600 RES=0x00 SYN URGP=0`,
          };
        });
        return appendJournal(agent.journal, lines);
      }),
    );
    const located = await waitFor(
      async () => {
        const texts = await scrape(agents);
        return texts.every((t) => metricValue(t, `${M}drops_posted_total`) >= PEERS) ? texts : null;
      },
      600_000,
      `${PEERS} drops located by every agent`,
    );
    const stormSeconds = (performance.now() - stormStart) / 1000;
    const stormCpu = (await controlPlaneCpu(plane)) - cpuBeforeStorm;
    // Read as doctor reads them, added up over the agents.
    const figures = located.map((text) => lookupFigures(text));
    const outcomes: Record<string, number> = {};
    for (const { outcomes: counted } of figures.filter((f) => f !== null)) {
      for (const [outcome, count] of Object.entries(counted))
        outcomes[outcome] = (outcomes[outcome] ?? 0) + count;
    }
    const lookups = (outcomes.found ?? 0) + (outcomes.not_found ?? 0);
    const podListsInStorm = agents.reduce((sum, a, k) => sum + lists(a, 'pods').length - listsBefore[k]!, 0);
    const afterStorm = { heapAfterGcMiB: await heapAfterGcMiB(agents) };
    const cacheEntries = mean(figures.map((f) => f?.cacheEntries ?? 0));

    process.stdout.write(
      `${JSON.stringify({
        bench: 'api-load',
        mode,
        pods: layout.pods,
        nodes: layout.nodes,
        agents: AGENTS,
        start: {
          readySeconds,
          podListKiBPerAgent: round(listBytes / 1024, 1),
          nodeListKiBPerAgent: round(nodeListBytes / 1024, 1),
        },
        idle,
        churn: {
          podChanges: CHURN,
          watchEventsPerAgent: round(watchEventsPerAgent, 1),
          watchActivity,
          apiServerEtcdCpuSeconds: round(churnCpu, 2),
        },
        storm: {
          peersPerAgent: PEERS,
          seconds: round(stormSeconds, 1),
          lookupOutcomes: outcomes,
          lookupsPerSecond: round(lookups / stormSeconds, 1),
          // The rest waited LOOKUP_WAIT_MS for the bounded lookup rate, then went out naming the address only.
          peersNamedShare: round((outcomes.found ?? 0) / (AGENTS * PEERS), 2),
          podListRequests: podListsInStorm,
          apiServerEtcdCpuSeconds: round(stormCpu, 2),
          apiServerEtcdCpuMsPerLookup: lookups > 0 ? round((stormCpu * 1000) / lookups, 2) : null,
        },
        afterStorm: { ...afterStorm, lookupCacheEntries: cacheEntries },
      })}\n`,
    );
  } finally {
    await stopAgents(agents);
  }
}

/** RSS of a Node process (the DaemonSet's NODE_OPTIONS) running `script`, once it has run for 3 s. */
async function floorRss(script: string): Promise<number> {
  const { nodeOptions } = await daemonSetMemory();
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', `${script}; setInterval(() => {}, 1e6);`],
    {
      env: { ...process.env, ...nodeOptions },
      stdio: 'ignore',
    },
  );
  try {
    await sleep(3000);
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024;
  } finally {
    child.kill();
  }
}

let plane: PrivateControlPlane | undefined;
try {
  const entry = await buildDist();
  plane = await privateControlPlane();
  const token = await shippedAgentToken(plane.cluster);
  const namespaces: string[] = [];
  for (let n = 0; n < NAMESPACES; n++) namespaces.push(await createNamespace(plane.cluster));
  let pods = 0;
  let nodes = 0;
  for (const n of scales.length > 0 ? scales : [1000, 20_000]) {
    const layout: Layout = { pods: n, nodes: Math.ceil(n / PODS_PER_NODE), namespaces };
    const setUp = performance.now();
    await grow(plane.cluster, layout, pods, nodes);
    process.stderr.write(
      `api-load: ${n} pods on ${layout.nodes} nodes set up in ${round((performance.now() - setUp) / 1000, 0)} s\n`,
    );
    pods = layout.pods;
    nodes = layout.nodes;
    for (const mode of MODES) await measureMode(plane, layout, mode, token, entry);
  }
  process.stdout.write(
    `${JSON.stringify({
      bench: 'api-load-floors',
      bareNodeRssMiB: mib(await floorRss('')),
      clientNodeRssMiB: mib(await floorRss("await import('@kubernetes/client-node')")),
      allDependenciesRssMiB: mib(
        await floorRss(
          "await Promise.all(['@kubernetes/client-node', 'lru-cache', 'pino', 'prom-client'].map((name) => import(name)))",
        ),
      ),
    })}\n`,
  );
} finally {
  await plane?.down();
}
