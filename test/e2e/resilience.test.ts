// The live agent through the failures a DaemonSet meets: the API server away for 30 s, a ClusterRole
// without `patch` on events, and the agent itself restarted mid-stream. Real API server (a private one
// where the test stops it), real journal, the agent as its own process.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type Cluster,
  connect,
  createNamespace,
  createServiceAccount,
  createToken,
  kubectl,
  type PrivateControlPlane,
  privateControlPlane,
  tokenKubeconfig,
  uniqueName,
} from '../support/cluster.ts';
import { appendJournal } from '../support/journal.ts';
import { metricValue, waitFor } from './agent-process.ts';
import { agentLauncher, drops, eventCounts, journalAgentEnv, journalDir, podPairs } from './scenario.ts';

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

const agentWith = agentLauncher();
const podPair = podPairs('10.99');

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
      const pair = await podPair(c);
      const { namespace } = pair;
      const { dir, file } = await journalDir();
      const env = await journalAgentEnv(kubeconfig, dir);
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
    const pair = await podPair(c);
    const { namespace } = pair;
    const { dir, file } = await journalDir();
    const agent = await agentWith(await journalAgentEnv(kubeconfig, dir));
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
    const pair = await podPair(c);
    const { namespace } = pair;
    const { dir, file } = await journalDir();
    const running = await agentWith(await journalAgentEnv(c.kubeconfig, dir));
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
