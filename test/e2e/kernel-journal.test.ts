// The real kernel through a real systemd-journald: iptables, ip6tables and nftables rules in a network
// namespace log and drop TCP, UDP and ICMP echo over IPv4 and IPv6 as Calico renders them; journald,
// running in its own mount namespace, reads the lines from /dev/kmsg into a journal the agent process
// follows (JOURNAL_DIRECTORY), and the same lines, written to a kern.log, go to an agent in file mode. Both
// give exactly the expected Events in the real API server. An entry sent to journald's syslog socket with
// the kernel's identifier, and a line a process wrote to /dev/kmsg (which journald files under the kernel's
// transport, with the writer's facility), are in the journal, yet give no Event: only _TRANSPORT=kernel with
// the kernel's facility is trusted.

import { writeFileSync } from 'node:fs';
import { appendFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, connect, kubectl, shippedAgentToken, tokenKubeconfig } from '../support/cluster.ts';
import { Journald } from '../support/journald.ts';
import { KernelNet } from '../support/kernel-net.ts';
import { type AgentProcess, metricValue, startAgent, waitFor } from './agent-process.ts';
import { eventLines, type KernelEvent, kernelPods, namespaceEvents } from './kernel-scenario.ts';

const NODE = 'node-a';
const TCP_PORT = 12865;
const UDP_PORT = 5001;
/** No real flow uses them: an Event on one could only come from a forged entry. */
const FORGED_PORT = 31337;
const FORGED_KMSG_PORT = 31338;
/** The kernel's own entries: what a process writes to /dev/kmsg also has _TRANSPORT=kernel. */
const KERNEL_ENTRIES = ['_TRANSPORT=kernel', 'SYSLOG_FACILITY=0'];
const AGENT_ENV = {
  NODE_NAME: NODE,
  POD_IDENTIFIER: 'name',
  WATCH_LOGS_INTERVAL_SECONDS: '1',
  // Six Events per pod, and room for an unexpected one: none waits 10 s for the pod's bucket to refill.
  EVENT_BURST_PER_POD: '10',
};

/** An address as the kernel's LOG line prints it: IPv6 in full, every group four digits (%pI6). */
function logged(ip: string): string {
  if (!ip.includes(':')) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const zeros = 8 - groups(head).length - groups(tail).length;
  return [...groups(head), ...Array<string>(zeros).fill('0'), ...groups(tail)]
    .map((group) => group.padStart(4, '0'))
    .join(':');
}

describe('the real kernel through a real systemd-journald (JOURNAL_DIRECTORY), and its lines in kern.log', () => {
  let cluster: Cluster;
  let net: KernelNet | undefined;
  let journald: Journald | undefined;
  let namespace: string;
  let agent: AgentProcess | undefined;
  let kubeconfig: string;
  let forged: string;
  let forgedKmsg: string;

  const events = (): Promise<KernelEvent[]> => namespaceEvents(cluster, namespace);

  /**
   * The Events, once the agent has read `lines` lines or more and has no Event left to write: an Event the
   * agent should not write would be there by then.
   */
  async function settledEvents(lines: number): Promise<KernelEvent[]> {
    return waitFor(
      async () => {
        const metrics = await agent!.metrics();
        if (metricValue(metrics, 'kube_iptables_tailer_lines_read_total') < lines) return null;
        if (metricValue(metrics, 'kube_iptables_tailer_queue_depth') !== 0) return null;
        const items = await events();
        return items.length >= expected().length ? items : null;
      },
      20_000,
      `${expected().length} Events written after ${lines} lines read`,
    );
  }

  /** Each flow: the server's address it went to, the client's it came from, its protocol in the kernel's line. */
  function flows(): { to: string; from: string; proto: string; what: string }[] {
    const { client, server } = net!;
    const v4 = { to: server.ipv4, from: client.ipv4 };
    const v6 = { to: server.ipv6, from: client.ipv6 };
    return [
      { ...v4, proto: 'PROTO=TCP', what: `on port ${TCP_PORT}/TCP` },
      { ...v6, proto: 'PROTO=TCP', what: `on port ${TCP_PORT}/TCP` },
      { ...v4, proto: 'PROTO=UDP', what: `on port ${UDP_PORT}/UDP` },
      { ...v6, proto: 'PROTO=UDP', what: `on port ${UDP_PORT}/UDP` },
      { ...v4, proto: 'PROTO=ICMP TYPE=8 CODE=0', what: 'over ICMP (type 8, code 0)' },
      { ...v6, proto: 'PROTO=ICMPv6 TYPE=128 CODE=0', what: 'over ICMPv6 (type 128, code 0)' },
    ];
  }

  function expected(): string[] {
    return flows()
      .flatMap(({ to, from, what }) => [
        `client: Packet dropped when sending traffic to server (${to}) ${what}`,
        `server: Packet dropped when receiving traffic from client (${from}) ${what}`,
      ])
      .sort();
  }

  /** The kernel's lines from the server's namespace, as journald stored them from /dev/kmsg. */
  function journalServerLines(): string[] {
    const marker = `IN=${net!.server.device} `;
    return journald!
      .entries(...KERNEL_ENTRIES)
      .map((entry) => entry.MESSAGE)
      .filter((message): message is string => typeof message === 'string' && message.includes(marker));
  }

  beforeAll(async () => {
    cluster = connect(inject('kubeconfig'));
    net = KernelNet.start();
    journald = await Journald.start();
    namespace = await kernelPods(cluster, net, NODE);
    // As Calico renders a Log rule then a Deny, each flow through one rule kind and every kind used.
    net.logAndDrop('iptables', ['-p', 'tcp', '--dport', String(TCP_PORT)]);
    net.logAndDrop('iptables', ['-p', 'icmp', '--icmp-type', 'echo-request']);
    net.logAndDrop('ip6tables', ['-p', 'tcp', '--dport', String(TCP_PORT)]);
    net.logAndDrop('ip6tables', ['-p', 'udp', '--dport', String(UDP_PORT)]);
    // The iptables rules above are nftables chains too (iptables-nft): the families keep the flows apart.
    net.nft(
      [
        'table inet kit {',
        '  chain input {',
        '    type filter hook input priority 0;',
        `    meta nfproto ipv4 udp dport ${UDP_PORT} log prefix "calico-packet: " level info drop`,
        '    meta nfproto ipv6 icmpv6 type echo-request log prefix "calico-packet: " level info drop',
        '  }',
        '}',
      ].join('\n'),
    );
    kubeconfig = await tokenKubeconfig(cluster, await shippedAgentToken(cluster));
    agent = await startAgent({
      KUBECONFIG: kubeconfig,
      JOURNAL_DIRECTORY: journald.directory,
      CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
      ...AGENT_ENV,
    });
    const { client, server } = net;
    // First, and in the journal before any real drop: the real drops' Events prove the agent read past it.
    forged = `calico-packet: IN=${server.device} OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=${client.ipv4} DST=${server.ipv4} LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=${FORGED_PORT} WINDOW=64240 RES=0x00 SYN URGP=0`;
    journald.forge(forged);
    await waitFor(
      () => journald!.entries('_TRANSPORT=syslog').length > 0,
      5000,
      'the forged entry in the journal',
    );
    // "kernel: " as a tag: journald takes it for the identifier, and keeps the rest, prefix first, as MESSAGE.
    forgedKmsg = forged
      .replace(`DPT=${FORGED_PORT}`, `DPT=${FORGED_KMSG_PORT}`)
      .replace(`IN=${server.device}`, 'IN=forged0');
    writeFileSync('/dev/kmsg', `<4>kernel: ${forgedKmsg}\n`);
    await waitFor(
      () => journald!.entries(`MESSAGE=${forgedKmsg}`).length > 0,
      5000,
      'the line written to /dev/kmsg in the journal',
    );
    // TCP retries its SYN while the client waits: each TCP flow is logged more than once.
    await Promise.all([
      net.tcp(server.ipv4, TCP_PORT),
      net.tcp(server.ipv6, TCP_PORT),
      net.udp(server.ipv4, UDP_PORT),
      net.udp(server.ipv6, UDP_PORT),
      net.ping(server.ipv4),
      net.ping(server.ipv6),
    ]);
  });

  afterAll(async () => {
    try {
      if (agent !== undefined) expect(await agent.stop()).toBe(0);
    } finally {
      await journald?.stop();
      net?.stop();
    }
  });

  it('journal mode: each pod gets its Event from the kernel entries, and the forged entry gives none', async () => {
    // journald has stored every line the kernel logged in the server's namespace (dmesg), as kernel entries.
    const serverLines = net!.serverLines();
    await waitFor(
      () => JSON.stringify(journalServerLines()) === JSON.stringify(serverLines),
      5000,
      `the journal to hold the ${serverLines.length} lines dmesg shows`,
    );
    for (const { to, from, proto } of flows()) {
      expect(
        serverLines.some(
          (line) => line.includes(` SRC=${logged(from)} DST=${logged(to)} `) && line.includes(` ${proto} `),
        ),
      ).toBe(true);
    }
    const items = await settledEvents(journald!.entries(...KERNEL_ENTRIES).length);
    expect(eventLines(items)).toEqual(expected());
    // Repeats of one flow within the interval are suppressed: one drop counted per Event.
    expect(items.map((e) => e.count)).toEqual(items.map(() => 1));
    expect(items.filter((e) => e.message.includes(String(FORGED_PORT)))).toEqual([]);
    // The forged entry did reach the journal, with the kernel's identifier: only its transport tells it apart.
    expect(journald!.entries('_TRANSPORT=syslog').map((e) => [e.SYSLOG_IDENTIFIER, e.MESSAGE])).toEqual([
      ['kernel', forged],
    ]);
    expect(journald!.entries(`MESSAGE=${forged}`).map((e) => e._TRANSPORT)).toEqual(['syslog']);
    // The line written to /dev/kmsg looks like the kernel's in all but its facility.
    expect(items.filter((e) => e.message.includes(String(FORGED_KMSG_PORT)))).toEqual([]);
    expect(
      journald!
        .entries(`MESSAGE=${forgedKmsg}`)
        .map((e) => [e._TRANSPORT, e.SYSLOG_IDENTIFIER, e.SYSLOG_FACILITY]),
    ).toEqual([['kernel', 'kernel', '1']]);
    // At least this one: other tests on the machine may write to /dev/kmsg meanwhile.
    expect(
      metricValue(
        await agent!.metrics(),
        'kube_iptables_tailer_source_errors_total',
        'reason="untrusted_facility"',
      ),
    ).toBeGreaterThanOrEqual(1);
  });

  it('file mode: the same kernel lines in kern.log give the same Events', async () => {
    if (agent !== undefined) {
      const journalAgent = agent;
      agent = undefined;
      expect(await journalAgent.stop()).toBe(0);
    }
    await kubectl(cluster, ['delete', 'events', '--all', '-n', namespace]);
    expect(await events()).toEqual([]);
    const log = join(await mkdtemp(join(tmpdir(), 'kernel-journal-')), 'kern.log');
    await writeFile(log, '');
    agent = await startAgent({
      KUBECONFIG: kubeconfig,
      IPTABLES_LOG_PATH: log,
      CHECKPOINT_DIRECTORY: await mkdtemp(join(tmpdir(), 'checkpoint-')),
      ...AGENT_ENV,
    });
    const lines = journalServerLines();
    const stamp = new Date().toISOString();
    await appendFile(log, lines.map((line) => `${stamp} ${NODE} kernel: ${line}\n`).join(''));
    const items = await settledEvents(lines.length);
    expect(eventLines(items)).toEqual(expected());
    expect(items.map((e) => e.count)).toEqual(items.map(() => 1));
    const metrics = await agent!.metrics();
    expect(metricValue(metrics, 'kube_iptables_tailer_lines_read_total')).toBe(lines.length);
    expect(metricValue(metrics, 'kube_iptables_tailer_lines_parsed_total')).toBe(lines.length);
  });
});
