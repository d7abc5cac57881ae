// The real kernel end to end in KMSG_PATH mode: iptables and nftables rules in a network namespace log and
// drop TCP over IPv4 and ICMPv6 echo, the agent process reads the machine's real /dev/kmsg (from a
// checkpoint at the buffer's newest record, so nothing earlier tests logged counts), and the Events in the
// real API server are exactly the expected ones. A line a process writes to /dev/kmsg with the same text
// gives no Event: the kernel gives it the user facility.

import { writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, connect, shippedAgentToken, tokenKubeconfig } from '../support/cluster.ts';
import { KernelNet } from '../support/kernel-net.ts';
import { kmsgCheckpointAtNewest } from '../support/kmsg.ts';
import { type AgentProcess, metricValue, startAgent } from './agent-process.ts';
import { awaitEvents, eventLines, kernelPods } from './kernel-scenario.ts';

const NODE = 'node-a';
const FORGED_PORT = 31337;

describe('the real kernel through /dev/kmsg (KMSG_PATH)', () => {
  let cluster: Cluster;
  let net: KernelNet;
  let namespace: string;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    cluster = connect(inject('kubeconfig'));
    net = KernelNet.start();
    namespace = await kernelPods(cluster, net, NODE);
    // As Calico renders a Log rule then a Deny.
    net.logAndDrop('iptables', ['-p', 'tcp', '--dport', '12865']);
    net.nft(
      [
        'table ip6 kit {',
        '  chain input {',
        '    type filter hook input priority 0;',
        '    icmpv6 type echo-request log prefix "calico-packet: " level info drop',
        '  }',
        '}',
      ].join('\n'),
    );
    const checkpoints = await mkdtemp(join(tmpdir(), 'kmsg-checkpoint-'));
    await kmsgCheckpointAtNewest(checkpoints);
    agent = await startAgent({
      KUBECONFIG: await tokenKubeconfig(cluster, await shippedAgentToken(cluster)),
      KMSG_PATH: '/dev/kmsg',
      CHECKPOINT_DIRECTORY: checkpoints,
      NODE_NAME: NODE,
      POD_IDENTIFIER: 'name',
    });
  });

  afterAll(async () => {
    if (agent !== undefined) expect(await agent.stop()).toBe(0);
    net?.stop();
  });

  it('gives each pod its Event from the kernel lines, and none for a line a process wrote', async () => {
    const { client, server } = net;
    // First, so that the real drops' Events prove the agent read past it.
    writeFileSync(
      '/dev/kmsg',
      `<4>calico-packet: IN=${server.device} OUT= SRC=${client.ipv4} DST=${server.ipv4} LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=${FORGED_PORT} WINDOW=64240 RES=0x00 SYN URGP=0 \n`,
    );
    await net.tcp(server.ipv4, 12865);
    await net.ping(server.ipv6);
    const expected = [
      `client: Packet dropped when sending traffic to server (${server.ipv4}) on port 12865/TCP`,
      `server: Packet dropped when receiving traffic from client (${client.ipv4}) on port 12865/TCP`,
      `client: Packet dropped when sending traffic to server (${server.ipv6}) over ICMPv6 (type 128, code 0)`,
      `server: Packet dropped when receiving traffic from client (${client.ipv6}) over ICMPv6 (type 128, code 0)`,
    ].sort();
    const events = await awaitEvents(cluster, namespace, expected.length);
    expect(eventLines(events)).toEqual(expected);
    // TCP retries its SYN while the client waits: repeats within the interval are suppressed.
    expect(events.map((e) => e.count)).toEqual(expected.map(() => 1));
    const metrics = await agent!.metrics();
    expect(
      metricValue(metrics, 'kube_iptables_tailer_source_errors_total', 'reason="untrusted_facility"'),
    ).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'kube_iptables_tailer_kmsg_records_lost_total')).toBe(0);
  });
});
