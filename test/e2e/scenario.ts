// The pieces every end-to-end scenario is made of: a client and a server pod with IPs of their own, drop
// lines between them in a real journal, the Event counts the API ends up with, and agent processes that
// are killed after each test.

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import {
  type Cluster,
  createNamespace,
  createPod,
  deletePod,
  kubectl,
  setPodRunning,
} from '../support/cluster.ts';
import { appendJournal, type JournalEntry } from '../support/journal.ts';
import { type AgentProcess, startAgent } from './agent-process.ts';

export interface Pair {
  namespace: string;
  client: string;
  server: string;
}

interface Made {
  c: Cluster;
  pair: Pair;
}

/**
 * Returns a maker of namespaces with a Running client and server pod. Every pair gets IPs of its own under
 * `network` (one /16 per test file): test files share one API server, and a pod of another test holding
 * the same IP would (rightly) receive the events. The pods are deleted after each test, so a later run on
 * a kept test environment finds no stale owner of an IP. Call once per test file, at its top level.
 */
export function podPairs(network: string): (c: Cluster) => Promise<Pair> {
  let subnet = 0;
  const made: Made[] = [];
  afterEach(async () => {
    // allSettled: a private control plane is already down when its test ends, and its pods with it.
    await Promise.allSettled(
      made
        .splice(0)
        .flatMap(({ c, pair }) => [
          deletePod(c, pair.namespace, 'client'),
          deletePod(c, pair.namespace, 'server'),
        ]),
    );
  });
  return async (c) => {
    subnet++;
    const namespace = await createNamespace(c);
    const pair = { namespace, client: `${network}.${subnet}.6`, server: `${network}.${subnet}.16` };
    made.push({ c, pair });
    for (const [name, ip] of [
      ['client', pair.client],
      ['server', pair.server],
    ] as const) {
      await createPod(c, { namespace, name, nodeName: 'node-a' });
      await setPodRunning(c, namespace, name, { podIPs: [ip], hostIP: '10.128.0.2' });
    }
    return pair;
  };
}

function drop(pair: Pair, sport: number): JournalEntry {
  return {
    hostname: 'node-a',
    message: `calico-packet: IN=cali1 OUT=eth0 SRC=${pair.client} DST=${pair.server} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0`,
  };
}

/** `count` drops from client to server, numbered from `from` (a source port each). */
export function drops(pair: Pair, from: number, count: number): JournalEntry[] {
  return Array.from({ length: count }, (_, i) => drop(pair, 40000 + from + i));
}

interface EventJson {
  involvedObject: { name: string };
  count: number;
}

/** Sum of Event counts per pod name in the namespace, as kubectl reads them. */
export async function eventCounts(c: Cluster, namespace: string): Promise<Record<string, number>> {
  const list = JSON.parse(await kubectl(c, ['get', 'events', '-n', namespace, '-o', 'json'])) as {
    items: EventJson[];
  };
  const counts: Record<string, number> = {};
  for (const event of list.items) {
    counts[event.involvedObject.name] = (counts[event.involvedObject.name] ?? 0) + event.count;
  }
  return counts;
}

/** A journal directory of its own, holding one boot line. */
export async function journalDir(): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'journal-'));
  const file = join(dir, 'system.journal');
  await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
  return { dir, file };
}

/** What an agent reading `journalDirectory` needs besides its identity: a checkpoint directory of its own. */
export async function journalAgentEnv(
  kubeconfig: string,
  journalDirectory: string,
): Promise<{ KUBECONFIG: string; JOURNAL_DIRECTORY: string; CHECKPOINT_DIRECTORY: string }> {
  return {
    KUBECONFIG: kubeconfig,
    JOURNAL_DIRECTORY: journalDirectory,
    CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
  };
}

/**
 * Starts agents counting every drop (no repeat interval) on node-a; each is SIGKILLed after its test, with
 * its last log lines printed when the test failed. Call once per test file, at its top level.
 */
export function agentLauncher(): (env: Record<string, string>) => Promise<AgentProcess> {
  const agents: AgentProcess[] = [];
  afterEach(async (context) => {
    for (const agent of agents.splice(0)) {
      // A failure is only diagnosable with what the agent said.
      if (context.task.result?.state === 'fail') console.log(agent.logs().slice(-40));
      await agent.stop('SIGKILL');
    }
  });
  return async (env) => {
    const agent = await startAgent({ REPEATED_EVENTS_INTERVAL_MINUTES: '0', NODE_NAME: 'node-a', ...env });
    agents.push(agent);
    return agent;
  };
}
