// The live agent through the failures a DaemonSet meets: the API server away for 30 s, a ClusterRole
// without `patch` on events, and the agent itself restarted mid-stream. Real API server (a private one
// where the test stops it), real journal, the agent as its own process.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  createServiceAccount,
  createToken,
  kubectl,
  type PrivateControlPlane,
  privateControlPlane,
  setPodRunning,
  tokenKubeconfig,
  uniqueName,
} from '../support/cluster.ts';
import { appendJournal, type JournalEntry } from '../support/journal.ts';
import { type AgentProcess, metricValue, startAgent, waitFor } from './agent-process.ts';

/**
 * Every test gets pod IPs of its own: test files share one API server, and a pod of another test holding
 * the same IP would (rightly) receive the events.
 */
let subnet = 0;
interface Pair {
  namespace: string;
  client: string;
  server: string;
}

function drop(pair: Pair, sport: number): JournalEntry {
  return {
    hostname: 'node-a',
    message: `calico-packet: IN=cali1 OUT=eth0 SRC=${pair.client} DST=${pair.server} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0`,
  };
}

function drops(pair: Pair, from: number, count: number): JournalEntry[] {
  return Array.from({ length: count }, (_, i) => drop(pair, 40000 + from + i));
}

interface EventJson {
  metadata: { name: string };
  involvedObject: { name: string };
  count: number;
}

async function eventCounts(c: Cluster, namespace: string): Promise<Record<string, number>> {
  const list = JSON.parse(await kubectl(c, ['get', 'events', '-n', namespace, '-o', 'json'])) as {
    items: EventJson[];
  };
  const counts: Record<string, number> = {};
  for (const event of list.items) {
    counts[event.involvedObject.name] = (counts[event.involvedObject.name] ?? 0) + event.count;
  }
  return counts;
}

async function pods(c: Cluster): Promise<Pair> {
  const namespace = await createNamespace(c);
  subnet++;
  const pair = { namespace, client: `10.99.${subnet}.6`, server: `10.99.${subnet}.16` };
  for (const [name, ip] of [
    ['client', pair.client],
    ['server', pair.server],
  ] as const) {
    await createPod(c, { namespace, name, nodeName: 'node-a' });
    await setPodRunning(c, namespace, name, { podIPs: [ip], hostIP: '10.128.0.2' });
  }
  return pair;
}

/** Admin-applied RBAC from a YAML text; returns a kubeconfig holding only the ServiceAccount's token. */
async function agentIdentity(c: Cluster, rules: string): Promise<string> {
  const name = uniqueName('tailer');
  const namespace = await createNamespace(c);
  await createServiceAccount(c, namespace, name);
  const file = join(await mkdtemp(join(tmpdir(), 'rbac-')), 'rbac.yaml');
  await writeFile(
    file,
    `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ${name}}
rules:
${rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ${name}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ${name}}
subjects: [{kind: ServiceAccount, name: ${name}, namespace: ${namespace}}]
`,
  );
  await kubectl(c, ['apply', '-f', file]);
  return tokenKubeconfig(c, await createToken(c, namespace, name));
}

const READ_PODS_AND_NODES = `  - {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
  - {apiGroups: [""], resources: [nodes], verbs: [list, watch]}`;

async function journalDir(): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'journal-'));
  const file = join(dir, 'system.journal');
  await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
  return { dir, file };
}

/** Kernel entries of the journal after the cursor, counted by journalctl itself. */
async function kernelEntriesAfter(dir: string, cursor: string): Promise<number> {
  const { stdout } = await promisify(execFile)('journalctl', [
    `--directory=${dir}`,
    `--after-cursor=${cursor}`,
    '--output=cat',
    '--no-pager',
    '_TRANSPORT=kernel',
  ]);
  return stdout.split('\n').filter((line) => line !== '').length;
}

const agents: AgentProcess[] = [];
afterEach(async (context) => {
  for (const agent of agents.splice(0)) {
    // A failure is only diagnosable with what the agent said.
    if (context.task.result?.state === 'fail') console.log(agent.logs().slice(-40));
    await agent.stop('SIGKILL');
  }
});

async function agentWith(env: Record<string, string>): Promise<AgentProcess> {
  const agent = await startAgent({ REPEATED_EVENTS_INTERVAL_MINUTES: '0', NODE_NAME: 'node-a', ...env });
  agents.push(agent);
  return agent;
}

describe('agent restarts', () => {
  let c: Cluster;
  let kubeconfig: string;
  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    kubeconfig = await agentIdentity(
      c,
      `${READ_PODS_AND_NODES}\n  - {apiGroups: [""], resources: [events], verbs: [create, patch]}`,
    );
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`resumes from its checkpoint after ${signal}: no drop lost, no count inflated`, async () => {
      const pair = await pods(c);
      const { namespace } = pair;
      const { dir, file } = await journalDir();
      const env = {
        KUBECONFIG: kubeconfig,
        JOURNAL_DIRECTORY: dir,
        CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
      };
      const first = await agentWith(env);
      await appendJournal(file, drops(pair, 0, 5));
      await waitFor(
        async () => (await eventCounts(c, namespace)).client === 5,
        15_000,
        'the first five drops counted',
      );
      const code = await first.stop(signal);
      expect(code).toBe(signal === 'SIGTERM' ? 0 : null);
      const { cursor } = JSON.parse(
        await readFile(join(env.CHECKPOINT_DIRECTORY, 'journal.cursor.json'), 'utf8'),
      ) as { cursor: string };
      // What the agent had handled but not yet checkpointed when it died: read again after the restart.
      const reread = await kernelEntriesAfter(dir, cursor);
      await appendJournal(file, drops(pair, 5, 5));

      const second = await agentWith(env);
      await appendJournal(file, drops(pair, 10, 2));
      await waitFor(
        async () => {
          const counts = await eventCounts(c, namespace);
          return counts.client === 12 && counts.server === 12;
        },
        15_000,
        'all twelve drops counted on both pods',
      );
      // Settled: nothing re-read is counted a second time later.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await eventCounts(c, namespace)).toEqual({ client: 12, server: 12 });
      // Exactly the entries after the checkpoint were read again, not the journal from its start.
      const read = metricValue(await second.metrics(), 'kube_iptables_tailer_lines_read_total');
      console.log(`${signal}: ${reread} of 6 entries read again after the restart (after the checkpoint)`);
      expect(read).toBe(reread + 7);
      if (signal === 'SIGTERM') expect(reread).toBe(0);
    });
  }
});

describe('RBAC without patch on events', () => {
  it('names the missing permission once, keeps running and counts the failures', async () => {
    const c = connect(inject('kubeconfig'));
    const kubeconfig = await agentIdentity(
      c,
      `${READ_PODS_AND_NODES}\n  - {apiGroups: [""], resources: [events], verbs: [create]}`,
    );
    const pair = await pods(c);
    const { namespace } = pair;
    const { dir, file } = await journalDir();
    const agent = await agentWith({
      KUBECONFIG: kubeconfig,
      JOURNAL_DIRECTORY: dir,
      CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
    });
    await appendJournal(file, drops(pair, 0, 1));
    await waitFor(async () => Object.keys(await eventCounts(c, namespace)).length === 2, 15_000, 'creates');
    await appendJournal(file, drops(pair, 1, 3));
    const failed = await waitFor(
      async () => {
        const value = metricValue(
          await agent.metrics(),
          'kube_iptables_tailer_events_failed_total',
          'reason="forbidden"',
        );
        return value >= 2 && value;
      },
      15_000,
      'forbidden patches counted',
    );
    expect(failed).toBeGreaterThanOrEqual(2);
    const forbidden = agent
      .logs()
      .filter((line) => /patch/.test(String(line.msg)) && /events/.test(String(line.msg)));
    expect(forbidden).toHaveLength(1);
    expect(String(forbidden[0]?.msg)).toMatch(/grant .*patch.* "events"/);
    expect((await fetch(`http://127.0.0.1:${agent.port}/healthz`)).status).toBe(200);
    expect(agent.child.exitCode).toBeNull();
  });
});

describe('API server away for 30 s', () => {
  let plane: PrivateControlPlane;
  beforeAll(async () => {
    plane = await privateControlPlane();
  });
  afterAll(() => plane.down());

  it('turns every drop of the outage into its event once the server is back, nothing twice', async () => {
    const c = plane.cluster;
    const pair = await pods(c);
    const { namespace } = pair;
    const { dir, file } = await journalDir();
    const running = await agentWith({
      KUBECONFIG: c.kubeconfig,
      JOURNAL_DIRECTORY: dir,
      CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
    });
    await appendJournal(file, drops(pair, 0, 2));
    await waitFor(async () => (await eventCounts(c, namespace)).client === 2, 15_000, 'two drops before');

    await plane.testenv('stop-apiserver');
    const down = Date.now();
    for (let i = 0; i < 6; i++) {
      await appendJournal(file, drops(pair, 2 + i, 1));
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 30_000 - (Date.now() - down))));
    await plane.testenv('start-apiserver');

    await waitFor(
      async () => {
        const counts = await eventCounts(c, namespace).catch(() => ({}) as Record<string, number>);
        return counts.client === 8 && counts.server === 8;
      },
      60_000,
      'all eight drops counted after the outage',
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await eventCounts(c, namespace)).toEqual({ client: 8, server: 8 });
    // The pod watch lost its server and came back: visible to operators, not only in the log.
    const metrics = await running.metrics();
    expect(
      metricValue(metrics, 'kube_iptables_tailer_api_watch_total', 'resource="pods",counter="reconnects"'),
    ).toBeGreaterThan(0);
    expect(
      metricValue(metrics, 'kube_iptables_tailer_api_watch_total', 'resource="pods",counter="lists"'),
    ).toBeGreaterThanOrEqual(1);
  }, 180_000);
});
