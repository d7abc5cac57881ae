// The real kernel end to end: iptables, ip6tables and nftables rules in a network namespace log and drop
// traffic as Calico renders them with a placeholder prefix (`drop %k %p`); the kernel's own lines, as a
// syslog daemon writes them to kern.log, go to the agent process in file mode; the Events in the real API
// server name the policy that dropped each flow, also when iptables cut its name at 29 characters.

import { appendFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, connect, shippedAgentToken, tokenKubeconfig } from '../support/cluster.ts';
import { KernelNet } from '../support/kernel-net.ts';
import { type AgentProcess, startAgent } from './agent-process.ts';
import { awaitEvents, eventLines, kernelPods } from './kernel-scenario.ts';

const NODE = 'node-a';

describe('the real kernel: Events name the policy its LOG prefix names', () => {
  let cluster: Cluster;
  let net: KernelNet;
  let namespace: string;
  let agent: AgentProcess | undefined;
  let log: string;

  beforeAll(async () => {
    cluster = connect(inject('kubeconfig'));
    net = KernelNet.start();
    namespace = await kernelPods(cluster, net, NODE);
    // As Calico renders a Log rule before Deny, with Felix's logPrefix "drop %k %p" and ": " appended.
    const { server } = net;
    net.logAndDrop('iptables', ['-p', 'tcp', '--dport', '12865'], `drop np ${namespace}/web: `);
    // 33 characters rendered: iptables keeps 29 of them.
    net.logAndDrop('iptables', ['-p', 'udp', '--dport', '5001'], 'drop gnp default.netperf-policy: ');
    net.nft(
      [
        'table ip6 kit {',
        '  chain input {',
        '    type filter hook input priority 0;',
        `    icmpv6 type echo-request log prefix "drop knp ${namespace}/deny-ping-from-every-client-pod: " level info drop`,
        '  }',
        '}',
      ].join('\n'),
    );
    log = join(await mkdtemp(join(tmpdir(), 'kernel-policy-')), 'kern.log');
    await writeFile(log, '');
    agent = await startAgent({
      KUBECONFIG: await tokenKubeconfig(cluster, await shippedAgentToken(cluster)),
      IPTABLES_LOG_PATH: log,
      CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
      NODE_NAME: NODE,
      IPTABLES_LOG_PREFIX: 'drop %k %p',
      POD_IDENTIFIER: 'name',
      WATCH_LOGS_INTERVAL_SECONDS: '1',
    });
    await net.tcp(server.ipv4, 12865);
    await net.udp(server.ipv4, 5001);
    await net.ping(server.ipv6);
  });

  afterAll(async () => {
    if (agent !== undefined) expect(await agent.stop()).toBe(0);
    net?.stop();
  });

  it('gives each pod its Event, ending with the policy, from the kernel lines a syslog daemon writes', async () => {
    const lines = net.serverLines();
    // The kernel logged each flow (TCP retries its SYN within the 2 s the client waits).
    expect(
      lines.some((line) => line.startsWith(`drop np ${namespace}/web: `) && line.includes(' PROTO=TCP ')),
    ).toBe(true);
    expect(lines.some((line) => line.startsWith('drop gnp default.netperf-poliIN='))).toBe(true);
    expect(lines.some((line) => line.includes('PROTO=ICMPv6 TYPE=128 CODE=0'))).toBe(true);
    const stamp = new Date().toISOString();
    await appendFile(log, lines.map((line) => `${stamp} ${NODE} kernel: ${line}\n`).join(''));

    const { client, server } = net;
    const expected = [
      `client: Packet dropped when sending traffic to server (${server.ipv4}) on port 12865/TCP by NetworkPolicy ${namespace}/web`,
      `server: Packet dropped when receiving traffic from client (${client.ipv4}) on port 12865/TCP by NetworkPolicy ${namespace}/web`,
      `client: Packet dropped when sending traffic to server (${server.ipv4}) on port 5001/UDP by GlobalNetworkPolicy default.netperf-poli…`,
      `server: Packet dropped when receiving traffic from client (${client.ipv4}) on port 5001/UDP by GlobalNetworkPolicy default.netperf-poli…`,
      `client: Packet dropped when sending traffic to server (${server.ipv6}) over ICMPv6 (type 128, code 0) by Kubernetes NetworkPolicy ${namespace}/deny-ping-from-every-client-pod`,
      `server: Packet dropped when receiving traffic from client (${client.ipv6}) over ICMPv6 (type 128, code 0) by Kubernetes NetworkPolicy ${namespace}/deny-ping-from-every-client-pod`,
    ].sort();
    const events = await awaitEvents(cluster, namespace, expected.length);
    expect(eventLines(events)).toEqual(expected);
    // Repeats of one flow within the interval are suppressed: one drop counted per Event.
    expect(events.map((e) => e.count)).toEqual(expected.map(() => 1));
    const metrics = await agent!.metrics();
    expect(metrics).toContain(
      `kube_iptables_tailer_policy_drops_total{kind="GlobalNetworkPolicy",namespace="",name="default.netperf-poli…"} 1`,
    );
  });
});
