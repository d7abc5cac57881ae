// The agent as the DaemonSet runs it (POD_WATCH_SCOPE=node, the default) with a peer pod on another node:
// the drop's remote side is looked up by address, and both pods get their Events, as with the watch of
// every pod (POD_WATCH_SCOPE=cluster). Real API server with the shipped RBAC, real journal, agent process.

import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
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
import { appendJournal, type JournalEntry } from '../support/journal.ts';
import { metricValue, waitFor } from './agent-process.ts';
import { agentLauncher, eventCounts, journalAgentEnv, journalDir } from './scenario.ts';

const agentWith = agentLauncher();

interface Peers {
  namespace: string;
  /** IPv4 on node-a, and the IPv6 address of the same pod. */
  client: { v4: string; v6: string };
  /** On node-b: its primary IPv4, and an IPv6 server whose primary address is IPv6. */
  server: { v4: string; v6: string };
}

function tcp(src: string, dst: string, sport: number, v6: boolean): JournalEntry {
  const ip = v6 ? 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0' : 'LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF';
  return {
    hostname: 'node-a',
    message: `calico-packet: IN=cali1 OUT=eth0 SRC=${src} DST=${dst} ${ip} PROTO=TCP SPT=${sport} DPT=8080 WINDOW=42600 RES=0x00 SYN URGP=0`,
  };
}

/** The kernel's spelling of an IPv6 address: eight groups of four digits. */
function longForm(short: string): string {
  const [head = '', tail = ''] = short.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((group) => group.padStart(4, '0')).join(':');
}

describe.each(['node', 'cluster'])('POD_WATCH_SCOPE=%s', (scope) => {
  let c: Cluster;
  let kubeconfig: string;
  const made: Peers[] = [];

  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    kubeconfig = await tokenKubeconfig(c, await shippedAgentToken(c));
  });

  afterEach(async () => {
    for (const { namespace } of made.splice(0)) {
      for (const name of ['client', 'server', 'server-v6'])
        await deletePod(c, namespace, name).catch(() => {});
    }
  });

  async function peers(subnet: number): Promise<Peers> {
    const namespace = await createNamespace(c);
    const p: Peers = {
      namespace,
      client: { v4: `10.71.${subnet}.6`, v6: `fd00:71:${subnet}::6` },
      server: { v4: `10.71.${subnet}.16`, v6: `fd00:71:${subnet}::16` },
    };
    made.push(p);
    await createPod(c, { namespace, name: 'client', nodeName: 'node-a' });
    await setPodRunning(c, namespace, 'client', { podIPs: [p.client.v4, p.client.v6], hostIP: '10.128.0.2' });
    await createPod(c, { namespace, name: 'server', nodeName: 'node-b' });
    await setPodRunning(c, namespace, 'server', { podIPs: [p.server.v4], hostIP: '10.128.0.3' });
    await createPod(c, { namespace, name: 'server-v6', nodeName: 'node-b' });
    await setPodRunning(c, namespace, 'server-v6', { podIPs: [p.server.v6], hostIP: '10.128.0.3' });
    return p;
  }

  it('gives the local pod and the pod of another node their Events, by IPv4 and by IPv6', async () => {
    const p = await peers(scope === 'node' ? 1 : 2);
    const { dir, file } = await journalDir();
    const agent = await agentWith({ ...(await journalAgentEnv(kubeconfig, dir)), POD_WATCH_SCOPE: scope });
    await appendJournal(file, [
      tcp(p.client.v4, p.server.v4, 40001, false),
      tcp(longForm(p.client.v6), longForm(p.server.v6), 40002, true),
    ]);
    const counts = await waitFor(
      async () => {
        const found = await eventCounts(c, p.namespace);
        return found.client === 2 && found.server === 1 && found['server-v6'] === 1 && found;
      },
      20_000,
      'Events on the client and both servers',
    );
    expect(counts).toEqual({ client: 2, server: 1, 'server-v6': 1 });
    const metrics = await agent.metrics();
    const found = metricValue(metrics, 'kube_iptables_tailer_pod_lookups_total', 'outcome="found"');
    expect(found).toBe(scope === 'node' ? 2 : 0);
  });
});
