import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { PodIdentifier } from '../../agent/config.ts';
import { peerName, podIdentity, type ReverseResolver } from '../../agent/locator/naming.ts';
import { PodDirectory } from '../../agent/locator/pod-directory.ts';
import { podState } from '../../agent/locator/pod-ref.ts';
import { Metrics } from '../../agent/metrics.ts';
import { canonicalIp } from '../../agent/net.ts';
import {
  calicoNode,
  client,
  indexed,
  NODE_A,
  NODE_B,
  notRunning,
  pod,
  running,
  server,
  T0,
  value,
} from './fixtures.ts';

const CREATED = new Date('2024-04-05T20:00:00Z');
const STARTED = new Date('2024-04-05T20:00:03Z');

function apiPod(
  overrides: { phase?: string; hostNetwork?: boolean; labels?: Record<string, string> } = {},
): V1Pod {
  return {
    metadata: {
      name: 'web-6c9f8b7d4-q2x7z',
      namespace: 'web',
      uid: 'uid-web',
      labels: overrides.labels ?? {},
      creationTimestamp: CREATED,
    },
    spec: { containers: [], nodeName: NODE_A, hostNetwork: overrides.hostNetwork },
    status: {
      phase: overrides.phase ?? 'Running',
      podIP: '10.4.1.12',
      podIPs: [{ ip: '10.4.1.12' }, { ip: 'fd00:0010:0244:0000:0000:0000:0000:0005' }],
      hostIP: '10.128.0.2',
      hostIPs: [{ ip: '10.128.0.2' }, { ip: 'fd00:10:128::2' }],
      startTime: STARTED,
    },
  };
}

describe('podState', () => {
  it('converts a dual-stack Running pod with canonical IPs and the identifier label', () => {
    expect(podState(apiPod({ labels: { app: 'web' } }), 'app')).toEqual({
      pod: {
        namespace: 'web',
        name: 'web-6c9f8b7d4-q2x7z',
        uid: 'uid-web',
        nodeName: NODE_A,
        hostNetwork: false,
        label: 'web',
        ips: ['10.4.1.12', 'fd00:10:244::5'],
      },
      running: true,
      hostIps: ['10.128.0.2', 'fd00:10:128::2'],
      started: STARTED.getTime(),
      created: CREATED.getTime(),
    });
  });

  it('reads times as a watch event or a pods file spells them, and marks missing ones as before any other', () => {
    const state = podState(
      {
        metadata: { name: 'x', creationTimestamp: '2024-04-05T20:00:00Z' as unknown as Date },
        status: { startTime: 'not a time' as unknown as Date },
      },
      '',
    );
    expect(state?.created).toBe(CREATED.getTime());
    expect(state?.started).toBe(Number.NEGATIVE_INFINITY);
    expect(podState({ metadata: { name: 'y' } }, '')?.created).toBe(Number.NEGATIVE_INFINITY);
  });

  it("gives a hostNetwork pod its node's addresses too", () => {
    expect(podState(apiPod({ hostNetwork: true }), '')?.pod.ips).toEqual([
      '10.4.1.12',
      'fd00:10:244::5',
      '10.128.0.2',
      'fd00:10:128::2',
    ]);
  });

  it('reads the label only when POD_IDENTIFIER_LABEL is set and present', () => {
    expect(podState(apiPod({ labels: { app: 'web' } }), '')?.pod.label).toBeNull();
    expect(podState(apiPod({ labels: { app: 'web' } }), 'tier')?.pod.label).toBeNull();
  });

  it.each(['Pending', 'Succeeded', 'Failed', 'Unknown'])('marks a %s pod as not running', (phase) => {
    expect(podState(apiPod({ phase }), '')?.running).toBe(false);
  });

  it('falls back to podIP, the default namespace, and rejects a pod without a name', () => {
    const state = podState({ metadata: { name: 'x' }, status: { phase: 'Running', podIP: '10.1.2.3' } }, '');
    expect(state?.pod).toMatchObject({ namespace: 'default', uid: '', ips: ['10.1.2.3'], nodeName: '' });
    expect(podState({ metadata: { namespace: 'a' } }, '')).toBeNull();
  });

  it('ignores addresses that are not IPs', () => {
    const state = podState({ metadata: { name: 'x' }, status: { podIPs: [{ ip: 'not-an-ip' }] } }, '');
    expect(state?.pod.ips).toEqual([]);
  });
});

describe('PodDirectory', () => {
  const at = (directory: PodDirectory, ip: string, time = T0) => directory.locate(ip, time);

  it('finds a dual-stack pod by either IP, its API spelling indexed in canonical form', () => {
    const directory = new PodDirectory();
    const state = podState(apiPod(), '');
    if (state === null) throw new Error('unreachable');
    directory.pods.upsert(state);
    expect(at(directory, '10.4.1.12').pod?.uid).toBe('uid-web');
    expect(at(directory, 'fd00:10:244::5').pod?.uid).toBe('uid-web');
    // Drops carry canonical addresses: the kernel's long spelling is canonicalised by the parser.
    expect(at(directory, canonicalIp('fd00:0010:0244:0000:0000:0000:0000:0005')!).pod?.uid).toBe('uid-web');
  });

  it.each(['Pending', 'Succeeded', 'Failed'])('does not find a %s pod', (phase) => {
    const directory = new PodDirectory();
    const state = podState(apiPod({ phase }), '');
    if (state === null) throw new Error('unreachable');
    directory.pods.upsert(state);
    expect(at(directory, '10.4.1.12').pod).toBeUndefined();
    expect(directory.size).toBe(0);
  });

  it('finds the Running pod when a finished pod had the same IP', () => {
    const directory = new PodDirectory();
    directory.pods.upsert(running(client));
    directory.pods.upsert(notRunning(pod({ namespace: 'batch', name: 'report', uid: 'uid-old' })));
    expect(at(directory, '10.4.1.6').pod?.uid).toBe('uid-client');
  });

  it('prefers a pod network pod over hostNetwork pods on the same IP', () => {
    const directory = new PodDirectory();
    const shared = pod({ name: 'odd', uid: 'uid-odd', ips: ['10.128.0.2'] });
    directory.pods.upsert(running(shared));
    directory.pods.upsert(running(calicoNode));
    expect(at(directory, '10.128.0.2')).toEqual({ pod: shared, node: undefined });
  });

  it('returns a hostNetwork pod when it is the only one on the IP, with its node', () => {
    const directory = new PodDirectory();
    directory.pods.upsert(running(calicoNode));
    expect(at(directory, '10.128.0.2')).toEqual({ pod: calicoNode, node: NODE_A });
  });

  it('follows updates and removals', () => {
    const directory = new PodDirectory();
    directory.pods.upsert(running(client));
    directory.pods.upsert(notRunning(client));
    expect(at(directory, '10.4.1.6').pod).toBeUndefined();
    directory.pods.upsert(running({ ...client, ips: ['10.4.1.7'] }));
    expect(at(directory, '10.4.1.6').pod).toBeUndefined();
    expect(at(directory, '10.4.1.7').pod?.uid).toBe('uid-client');
    expect(directory.size).toBe(1);
    directory.pods.remove(running(client));
    directory.pods.remove(running(client));
    expect(at(directory, '10.4.1.7').pod).toBeUndefined();
    expect(directory.size).toBe(0);
  });

  it('replaces every pod on a relist, reporting each Running one', () => {
    const directory = new PodDirectory();
    const reported: string[] = [];
    directory.onRunning((ref) => reported.push(ref.name));
    directory.pods.upsert(running(client));
    directory.pods.replace([running(server), notRunning(pod({ name: 'pending', uid: 'uid-pending' }))]);
    expect(at(directory, '10.4.1.6').pod).toBeUndefined();
    expect(at(directory, '10.4.0.16').pod?.uid).toBe('uid-server');
    expect(directory.size).toBe(1);
    expect(reported).toEqual(['netperf-client-42010a80017f', 'netperf-server-42010a80017f']);
  });

  it('learns node addresses from hostIPs and hostNetwork pods', () => {
    const directory = new PodDirectory();
    directory.pods.upsert(running(client, ['10.128.0.2', 'fd00:10:128::2']));
    directory.pods.upsert(running(pod({ ...calicoNode, nodeName: NODE_B, ips: ['10.128.0.3'] })));
    expect(at(directory, '10.128.0.2').node).toBe(NODE_A);
    expect(at(directory, 'fd00:10:128::2').node).toBe(NODE_A);
    expect(at(directory, '10.128.0.3').node).toBe(NODE_B);
    expect(at(directory, '10.4.1.6').node).toBeUndefined();
    directory.pods.remove(running(client));
    expect(at(directory, '10.128.0.2')).toEqual({ pod: undefined, node: undefined });
  });

  it('takes declared node addresses first and forgets them with the node', () => {
    const directory = new PodDirectory();
    directory.pods.upsert(running(client, ['10.128.0.3']));
    directory.nodes.upsert({ name: NODE_B, addresses: ['10.128.0.3'] });
    expect(at(directory, '10.128.0.3').node).toBe(NODE_B);
    directory.nodes.upsert({ name: NODE_B, addresses: ['10.128.0.33'] });
    expect(at(directory, '10.128.0.3').node).toBe(NODE_A);
    directory.nodes.replace([{ name: 'node-c', addresses: ['10.128.0.44'] }]);
    expect(at(directory, '10.128.0.33').node).toBeUndefined();
    expect(at(directory, '10.128.0.44').node).toBe('node-c');
    directory.nodes.remove({ name: 'node-c', addresses: [] });
    expect(at(directory, '10.128.0.44').node).toBeUndefined();
  });
});

/** Two Running pods with one IP: the status of a finished pod is stale while its IP is already reused. */
describe('PodDirectory with two Running pods on one IP', () => {
  const old = pod({ name: 'old', uid: 'uid-old' });
  const reused = pod({ name: 'reused', uid: 'uid-reused' });
  const MINUTE_MS = 60_000;

  function twoOnOneIp(first: ReturnType<typeof indexed>, second: ReturnType<typeof indexed>) {
    const metrics = new Metrics();
    const directory = new PodDirectory(metrics.podIpConflicts);
    directory.pods.upsert(first);
    directory.pods.upsert(second);
    return { directory, metrics };
  }

  it('names the pod that started last, whatever the order the index heard of them, and counts the conflict', async () => {
    const older = indexed(old, { started: T0 - 10 * MINUTE_MS });
    const newer = indexed(reused, { started: T0 - MINUTE_MS });
    for (const [first, second] of [
      [older, newer],
      [newer, older],
    ] as const) {
      const { directory, metrics } = twoOnOneIp(first, second);
      expect(directory.locate('10.4.1.6', T0).pod?.name).toBe('reused');
      expect(await value(metrics.podIpConflicts)).toBe(1);
    }
  });

  it('never names a pod started after the drop while another one was Running then', async () => {
    const { directory, metrics } = twoOnOneIp(
      indexed(old, { started: T0 - 10 * MINUTE_MS }),
      indexed(reused, { started: T0 + 5000 }),
    );
    expect(directory.locate('10.4.1.6', T0).pod?.name).toBe('old');
    expect(directory.locate('10.4.1.6', T0 + 5000).pod?.name).toBe('reused');
    expect(await value(metrics.podIpConflicts)).toBe(2);
  });

  it('breaks a tie of start times by creation time, then by name', () => {
    const started = T0 - MINUTE_MS;
    const byCreation = twoOnOneIp(
      indexed(reused, { started, created: T0 - 3 * MINUTE_MS }),
      indexed(old, { started, created: T0 - 2 * MINUTE_MS }),
    );
    expect(byCreation.directory.locate('10.4.1.6', T0).pod?.name).toBe('old');
    for (const [first, second] of [
      [indexed(old), indexed(reused)],
      [indexed(reused), indexed(old)],
    ] as const) {
      expect(twoOnOneIp(first, second).directory.locate('10.4.1.6', T0).pod?.name).toBe('reused');
    }
  });

  it('counts no conflict for hostNetwork pods sharing their node address', async () => {
    const { directory, metrics } = twoOnOneIp(
      running(calicoNode),
      running({ ...calicoNode, name: 'kube-proxy', uid: 'uid-proxy' }),
    );
    expect(directory.locate('10.128.0.2', T0).node).toBe(NODE_A);
    expect(await value(metrics.podIpConflicts)).toBe(0);
  });
});

describe('peerName', () => {
  const directory = new PodDirectory();
  directory.pods.upsert(running(client, ['10.128.0.2']));
  directory.pods.upsert(running(server, ['10.128.0.3']));
  directory.pods.upsert(running(calicoNode));
  directory.pods.upsert(notRunning(pod({ name: 'pending', uid: 'uid-pending', ips: ['10.4.1.9'] })));
  const located = (ip: string) => directory.locate(ip, T0);
  const name = (ip: string, podIdentifier: PodIdentifier = 'namespace') =>
    peerName(ip, located(ip), podIdentifier);

  it.each([
    ['namespace', 'default'],
    ['name', 'netperf-server-42010a80017f'],
    ['label', 'netperf-server'],
    ['name_with_namespace', 'default/netperf-server-42010a80017f'],
  ] as const)('names a pod by POD_IDENTIFIER=%s', (identifier, expected) => {
    expect(name('10.4.0.16', identifier)).toBe(expected);
  });

  it('falls back to the pod name when the label is missing', () => {
    expect(podIdentity(client, 'label')).toBe('netperf-client-42010a80017f');
  });

  it('names hostNetwork pods and node addresses by node', () => {
    expect(name('10.128.0.2', 'name')).toBe(NODE_A);
    expect(name('10.128.0.3', 'name')).toBe(NODE_B);
  });

  it('names pods that are not Running and unknown addresses by IP', () => {
    expect(name('10.4.1.9')).toBe('10.4.1.9');
    expect(name('203.0.113.50')).toBe('203.0.113.50');
  });

  it('uses a cached reverse DNS name only for peers that are neither pods nor nodes', () => {
    const dns = { lookup: (ip: string) => `host-${ip}.example` };
    const named = (ip: string, resolver: ReverseResolver = dns) =>
      peerName(ip, located(ip), 'name', resolver);
    expect(named('203.0.113.50')).toBe('host-203.0.113.50.example');
    expect(named('10.4.0.16')).toBe('netperf-server-42010a80017f');
    expect(named('10.128.0.2')).toBe(NODE_A);
    expect(named('203.0.113.50', { lookup: () => undefined })).toBe('203.0.113.50');
  });
});
