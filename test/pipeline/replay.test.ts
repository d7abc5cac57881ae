import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { age } from '../../agent/commands/replay.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const PODS = 'samples/pods.json';
const KERN_LOG = 'samples/kern.log';
const HOST = 'gke-cluster-k8s-default-pool-d4371b02-9s00';

interface Replayed {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The CLI as users run it, with only the environment the test gives (no NODE_NAME leaking in), and
 * the compile cache vitest.config.ts sets, which the CLI does not read.
 */
async function replay(args: string[], env: Record<string, string> = {}, input?: string): Promise<Replayed> {
  const run = promisify(execFile);
  const child = run(NODE, ['agent/cli.ts', 'replay', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE, ...env },
  });
  if (input !== undefined) child.child.stdin?.end(input);
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

interface Event {
  namespace: string;
  metadata: { name: string; namespace: string };
  involvedObject: { kind: string; apiVersion: string; namespace: string; name: string; uid: string };
  type: string;
  reason: string;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source: { component: string; host: string };
}

async function file(name: string, content: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'replay-')), name);
  await writeFile(path, content);
  return path;
}

function events(stdout: string): Event[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Event);
}

/** namespace/pod count first..last message, one string per Event, in output order. */
function summary(list: readonly Event[]): string[] {
  const hms = (t: string) => t.slice(11, 19);
  return list.map(
    (e) =>
      `${e.involvedObject.namespace}/${e.involvedObject.name} ${e.count} ${hms(e.firstTimestamp)}..${hms(e.lastTimestamp)} ${e.message}`,
  );
}

const CLIENT = 'default/netperf-client-42010a80017f';
const SERVER = 'default/netperf-server-42010a80017f';
const DNS = 'kube-system/kube-dns-5dbbd9cc58-8kpxb';
const WEB = 'web/web-6c9f8b7d4-q2x7z';
const SEND = 'Packet dropped when sending traffic to';
const RECEIVE = 'Packet dropped when receiving traffic from';

/**
 * What samples/kern.log must leave in the cluster (see samples/README.md). 12865/TCP posts at 20:41:42.123,
 * exactly 120 s later at 20:43:42.123 and at 20:45:50.9 (count 3); the retransmits at :43, :45, 20:42:49
 * and 20:44:30 are repeats. The DNS and ping retries are repeats too. The calico-drop line, the
 * malformed line, the drop between two non-pods, and the 20:33:10 line (over 10 minutes older than the
 * newest line) leave nothing. The Pending pod at 10.4.1.9 and the Succeeded pod that once had 10.4.1.6
 * are not pods for the pipeline.
 */
function expected(client: string, server: string, dns: string): string[] {
  return [
    `${CLIENT} 3 20:41:42..20:45:50 ${SEND} ${server} (10.4.0.16) on port 12865/TCP`,
    `${SERVER} 3 20:41:42..20:45:50 ${RECEIVE} ${client} (10.4.1.6) on port 12865/TCP`,
    `${CLIENT} 1 20:41:52..20:41:52 ${SEND} ${dns} (10.4.0.4) on port 53/UDP`,
    `${DNS} 1 20:41:52..20:41:52 ${RECEIVE} ${client} (10.4.1.6) on port 53/UDP`,
    `${CLIENT} 1 20:42:05..20:42:05 ${SEND} ${server} (10.4.0.16) over ICMP (type 8, code 0)`,
    `${SERVER} 1 20:42:05..20:42:05 ${RECEIVE} ${client} (10.4.1.6) over ICMP (type 8, code 0)`,
    `${CLIENT} 1 20:42:10..20:42:10 ${SEND} ${server} (10.4.0.16) on port 41725/TCP`,
    `${SERVER} 1 20:42:10..20:42:10 ${RECEIVE} ${client} (10.4.1.6) on port 41725/TCP`,
    `${WEB} 1 20:42:31..20:42:31 ${RECEIVE} ${HOST} (10.128.0.2) on port 8080/TCP`,
    `${WEB} 1 20:43:02..20:43:02 ${RECEIVE} fd00:10:244:1::7 on port 80/TCP`,
    `${SERVER} 1 20:43:20..20:43:20 ${RECEIVE} 10.4.1.9 on port 12865/TCP`,
  ];
}

describe('replay on the bundled samples', () => {
  it('prints exactly the Events of the story, naming peers by namespace by default', async () => {
    const { code, stdout, stderr } = await replay(['--pods', PODS, KERN_LOG]);
    expect(code).toBe(0);
    expect(summary(events(stdout))).toEqual(expected('default', 'default', 'kube-system'));
    // One line for the cut-off line 14, with the parser's reason; the detail wording is the parser's.
    expect(stderr).toMatch(new RegExp(`^${KERN_LOG}:14: [a-z_]+: [^\n]+\n$`));
  });

  it('names peers by pod name with POD_IDENTIFIER=name', async () => {
    const { code, stdout } = await replay(['--pods', PODS, KERN_LOG], { POD_IDENTIFIER: 'name' });
    expect(code).toBe(0);
    expect(summary(events(stdout))).toEqual(
      expected('netperf-client-42010a80017f', 'netperf-server-42010a80017f', 'kube-dns-5dbbd9cc58-8kpxb'),
    );
  });

  it('prints core/v1 Events with the contract fields', async () => {
    const [first] = events((await replay(['--pods', PODS, KERN_LOG])).stdout);
    expect(first).toEqual({
      namespace: 'default',
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {
        name: expect.stringMatching(/^netperf-client-42010a80017f\.[0-9a-f]{16}$/),
        namespace: 'default',
      },
      involvedObject: {
        kind: 'Pod',
        apiVersion: 'v1',
        namespace: 'default',
        name: 'netperf-client-42010a80017f',
        uid: '6f2d1c3a-9b3e-4c1e-8f7a-2b5d9e0c4a11',
      },
      related: {
        kind: 'Pod',
        apiVersion: 'v1',
        namespace: 'default',
        name: 'netperf-server-42010a80017f',
        uid: '0c9a7e55-31d4-4d8b-a1f2-7e6b3c2d9f08',
      },
      type: 'Warning',
      reason: 'PacketDrop',
      action: 'Drop',
      message: 'Packet dropped when sending traffic to default (10.4.0.16) on port 12865/TCP',
      count: 3,
      firstTimestamp: '2024-04-05T20:41:42Z',
      lastTimestamp: '2024-04-05T20:45:50Z',
      eventTime: '2024-04-05T20:41:42.123000Z',
      series: { count: 3, lastObservedTime: '2024-04-05T20:45:50.902000Z' },
      source: { component: 'kube-iptables-tailer', host: HOST },
      reportingComponent: 'kube-iptables-tailer',
      reportingInstance: HOST,
      note: 'Packet dropped when sending traffic to default (10.4.0.16) on port 12865/TCP',
    });
  });

  it('applies the agent environment: NODE_NAME, interval, expiration, reason', async () => {
    const { stdout } = await replay(['--pods', PODS, KERN_LOG], {
      NODE_NAME: 'node-a',
      REPEATED_EVENTS_INTERVAL_MINUTES: '0',
      PACKET_DROP_EXPIRATION_MINUTES: '15',
      KUBE_EVENT_DISPLAY_REASON: 'Dropped',
    });
    const list = events(stdout);
    const port = (p: string) =>
      list.find((e) => e.involvedObject.name.startsWith('netperf-client') && e.message.includes(p));
    expect(port('12865/TCP')?.count).toBe(7);
    expect(port('53/UDP')?.count).toBe(2);
    expect(port('5201/TCP')?.count).toBe(1);
    expect(new Set(list.map((e) => `${e.source.host} ${e.reason}`))).toEqual(new Set(['node-a Dropped']));
  });

  it('reads stdin and honours --prefix', async () => {
    const log =
      '2024-04-05T20:41:47.020417+00:00 h kernel: calico-drop: IN=cali1 OUT=eth0 SRC=10.4.1.6 DST=10.4.0.16 LEN=60 TTL=63 ID=1 PROTO=TCP SPT=1 DPT=12865 \n';
    expect((await replay(['--pods', PODS], {}, log)).stdout).toBe('');
    const { stdout } = await replay(['--pods', PODS, '--prefix', 'calico-drop'], {}, log);
    expect(summary(events(stdout))).toEqual([
      `${CLIENT} 1 20:41:47..20:41:47 ${SEND} default (10.4.0.16) on port 12865/TCP`,
      `${SERVER} 1 20:41:47..20:41:47 ${RECEIVE} default (10.4.1.6) on port 12865/TCP`,
    ]);
    expect(events(stdout)[0]?.source.host).toBe('h');
  });

  it('combines a scan: 10 Events of their own, then one Event counting all the sources', async () => {
    const log = await file(
      'scan.log',
      Array.from(
        { length: 200 },
        (_, n) =>
          `2024-04-05T20:41:${String(10 + Math.floor(n / 10)).padStart(2, '0')}.${String(n % 10)}00000+00:00 h kernel: calico-packet: IN=eth0 OUT=cali1 SRC=198.18.0.${n} DST=10.4.0.16 LEN=60 TTL=50 ID=1 PROTO=TCP SPT=4000 DPT=443 \n`,
      ).join(''),
    );
    const first = await replay(['--pods', PODS, log]);
    expect(first.code).toBe(0);
    // Events of one second are listed by name, which is a hash.
    const [combined, ...own] = summary(events(first.stdout)).reverse();
    expect(own.sort()).toEqual(
      Array.from(
        { length: 10 },
        (_, n) => `${SERVER} 1 20:41:10..20:41:10 ${RECEIVE} 198.18.0.${n} on port 443/TCP`,
      ),
    );
    expect(combined).toBe(
      `${SERVER} 190 20:41:11..20:41:29 ${RECEIVE} 200 sources on port 443/TCP (e.g. 198.18.0.10, 198.18.0.11, 198.18.0.12, …)`,
    );
    expect((await replay(['--pods', PODS, log])).stdout).toBe(first.stdout);
  });

  it('prints a kubectl-like table with --output text', async () => {
    const { code, stdout } = await replay(['--pods', PODS, '--output', 'text', KERN_LOG]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^LAST SEEN +COUNT +NAMESPACE +OBJECT +TYPE +REASON +MESSAGE$/);
    expect(lines[1]).toMatch(
      /^0s +3 +default +pod\/netperf-client-42010a80017f +Warning +PacketDrop +Packet dropped when sending traffic to default \(10\.4\.0\.16\) on port 12865\/TCP$/,
    );
    expect(lines).toHaveLength(12);
  });

  it('escapes control characters in text output, so a value cannot break the table', async () => {
    const pods = JSON.parse(await readFile(join(ROOT, PODS), 'utf8')) as {
      items: { metadata: { name: string } }[];
    };
    for (const pod of pods.items) pod.metadata.name = `${pod.metadata.name}\nfake\trow\u001b[31m`;
    const podsFile = await file('pods.json', JSON.stringify(pods));
    const { code, stdout } = await replay(['--pods', podsFile, '--output', 'text', KERN_LOG]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(12);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character but the newlines may remain.
    expect(stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(lines[1]).toContain('pod/netperf-client-42010a80017f\\nfake\\trow\\u001b[31m');
  });
});

describe('replay errors', () => {
  it('exits 1 with a clear message for a pods file that is not JSON or not a pod list', async () => {
    for (const content of ['{"items": [', '{"kind": "List"}', '[]']) {
      const pods = await file('pods.json', content);
      const { code, stdout, stderr } = await replay(['--pods', pods, KERN_LOG]);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toMatch(new RegExp(`^kube-iptables-tailer: cannot use pods file ${pods}: .+\n$`));
    }
  });

  it('exits 1 for a missing pods file or log file', async () => {
    expect(await replay(['--pods', 'samples/nope.json', KERN_LOG])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('cannot use pods file samples/nope.json: ENOENT'),
    });
    expect(await replay(['--pods', PODS, 'samples/nope.log'])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('cannot read samples/nope.log: ENOENT'),
    });
  });

  it('skips pods without a name with a warning and uses the rest', async () => {
    const pods = await file(
      'pods.json',
      JSON.stringify({
        items: [
          { metadata: {} },
          { metadata: { name: 'a' }, status: { phase: 'Running', podIP: '10.4.0.16' } },
        ],
      }),
    );
    const { code, stdout, stderr } = await replay(['--pods', pods, KERN_LOG]);
    expect(code).toBe(0);
    expect(stderr).toContain('items[0] is not a pod with a metadata.name; skipped');
    expect(
      events(stdout).map((e) => `${e.involvedObject.namespace}/${e.involvedObject.name} ${e.count}`),
    ).toContain('default/a 3');
  });

  it('exits 2 on usage mistakes', async () => {
    expect((await replay([KERN_LOG])).code).toBe(2);
    expect((await replay(['--pods', PODS, '--output', 'yaml', KERN_LOG])).code).toBe(2);
    expect((await replay(['--pods', PODS], { POD_IDENTIFIER: 'label' })).code).toBe(2);
  });
});

describe('age', () => {
  it.each([
    [0, '0s'],
    [119_999, '119s'],
    [120_000, '2m'],
    [200_000, '3m20s'],
    [600_000, '10m'],
    [3 * 3_600_000, '3h'],
    [3 * 3_600_000 + 60_000, '3h1m'],
    [8 * 3_600_000, '8h'],
    [50 * 3_600_000, '2d'],
  ])('%d ms is %s', (ms, text) => {
    expect(age(ms)).toBe(text);
  });
});

describe('replay with a template IPTABLES_LOG_PREFIX', () => {
  it('names the policy in the Events of drops whose prefix names one, and keeps the plain wording otherwise', async () => {
    const sample = (await readFile(KERN_LOG, 'utf8')).split('\n')[1]!;
    const named = sample.replace('calico-packet: ', 'calico-packet np default/netperf: ');
    const cut = sample
      .replace('calico-packet: ', 'calico-packet gnp default.net')
      .replace('SPT=60353', 'SPT=60354')
      .replace('DPT=12865', 'DPT=22');
    const log = await file('kern.log', `${named}\n${cut}\n`);
    const { code, stdout } = await replay(['--pods', PODS, log], {
      IPTABLES_LOG_PREFIX: 'calico-packet %k %p',
      POD_IDENTIFIER: 'name',
    });
    expect(code).toBe(0);
    const messages = events(stdout).map((e) => `${e.involvedObject.name}: ${e.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        'netperf-client-42010a80017f: Packet dropped when sending traffic to netperf-server-42010a80017f (10.4.0.16) on port 12865/TCP by NetworkPolicy default/netperf',
        'netperf-server-42010a80017f: Packet dropped when receiving traffic from netperf-client-42010a80017f (10.4.1.6) on port 12865/TCP by NetworkPolicy default/netperf',
        'netperf-client-42010a80017f: Packet dropped when sending traffic to netperf-server-42010a80017f (10.4.0.16) on port 22/TCP by GlobalNetworkPolicy default.net…',
      ]),
    );
    expect(messages).toHaveLength(4);
    const policies = events(stdout).map((e) => (e as { policy?: unknown }).policy);
    expect(policies).toContainEqual({
      tier: null,
      kind: 'NetworkPolicy',
      namespace: 'default',
      name: 'netperf',
      cut: false,
    });
    expect(policies).toContainEqual({
      tier: null,
      kind: 'GlobalNetworkPolicy',
      namespace: null,
      name: 'default.net',
      cut: true,
    });
  });
});
