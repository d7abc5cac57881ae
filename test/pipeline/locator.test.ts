import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { PodIdentifier } from '../../agent/config.ts';
import { peerName, podIdentity } from '../../agent/locator/naming.ts';
import { PodDirectory } from '../../agent/locator/pod-directory.ts';
import { podState } from '../../agent/locator/pod-ref.ts';
import { calicoNode, client, NODE_A, NODE_B, pod, running, server } from './fixtures.ts';

function apiPod(
  overrides: { phase?: string; hostNetwork?: boolean; labels?: Record<string, string> } = {},
): V1Pod {
  return {
    metadata: {
      name: 'web-6c9f8b7d4-q2x7z',
      namespace: 'web',
      uid: 'uid-web',
      labels: overrides.labels ?? {},
    },
    spec: { containers: [], nodeName: NODE_A, hostNetwork: overrides.hostNetwork },
    status: {
      phase: overrides.phase ?? 'Running',
      podIP: '10.4.1.12',
      podIPs: [{ ip: '10.4.1.12' }, { ip: 'fd00:0010:0244:0000:0000:0000:0000:0005' }],
      hostIP: '10.128.0.2',
      hostIPs: [{ ip: '10.128.0.2' }, { ip: 'fd00:10:128::2' }],
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
    });
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
  it('finds a dual-stack pod by either IP, in kernel or API spelling', () => {
    const directory = new PodDirectory();
    const state = podState(apiPod(), '');
    if (state === null) throw new Error('unreachable');
    directory.upsert(state);
    expect(directory.podByIp('10.4.1.12')?.uid).toBe('uid-web');
    expect(directory.podByIp('fd00:10:244::5')?.uid).toBe('uid-web');
    expect(directory.podByIp('fd00:0010:0244:0000:0000:0000:0000:0005')?.uid).toBe('uid-web');
  });

  it.each(['Pending', 'Succeeded', 'Failed'])('does not find a %s pod', (phase) => {
    const directory = new PodDirectory();
    const state = podState(apiPod({ phase }), '');
    if (state === null) throw new Error('unreachable');
    directory.upsert(state);
    expect(directory.podByIp('10.4.1.12')).toBeUndefined();
    expect(directory.size).toBe(0);
  });

  it('finds the Running pod when a finished pod had the same IP', () => {
    const directory = new PodDirectory();
    directory.upsert(running(client));
    directory.upsert({
      pod: pod({ namespace: 'batch', name: 'report', uid: 'uid-old' }),
      running: false,
      hostIps: [],
    });
    expect(directory.podByIp('10.4.1.6')?.uid).toBe('uid-client');
  });

  it('prefers a pod network pod over hostNetwork pods on the same IP', () => {
    const directory = new PodDirectory();
    const shared = pod({ name: 'odd', uid: 'uid-odd', ips: ['10.128.0.2'] });
    directory.upsert(running(shared));
    directory.upsert(running(calicoNode));
    expect(directory.podByIp('10.128.0.2')?.uid).toBe('uid-odd');
  });

  it('returns a hostNetwork pod when it is the only one on the IP', () => {
    const directory = new PodDirectory();
    directory.upsert(running(calicoNode));
    expect(directory.podByIp('10.128.0.2')?.hostNetwork).toBe(true);
  });

  it('follows updates and removals', () => {
    const directory = new PodDirectory();
    directory.upsert(running(client));
    directory.upsert({ pod: client, running: false, hostIps: [] });
    expect(directory.podByIp('10.4.1.6')).toBeUndefined();
    directory.upsert(running({ ...client, ips: ['10.4.1.7'] }));
    expect(directory.podByIp('10.4.1.6')).toBeUndefined();
    expect(directory.podByIp('10.4.1.7')?.uid).toBe('uid-client');
    expect(directory.uids()).toEqual(['uid-client']);
    expect(directory.remove('uid-client')).toBe(true);
    expect(directory.remove('uid-client')).toBe(false);
    expect(directory.podByIp('10.4.1.7')).toBeUndefined();
    expect(directory.size).toBe(0);
  });

  it('lets the latest upsert win between two Running pods claiming one IP', () => {
    const directory = new PodDirectory();
    directory.upsert(running(client));
    directory.upsert(running(pod({ name: 'newer', uid: 'uid-newer' })));
    expect(directory.podByIp('10.4.1.6')?.uid).toBe('uid-newer');
    directory.upsert(running(client));
    expect(directory.podByIp('10.4.1.6')?.uid).toBe('uid-client');
  });

  it('learns node addresses from hostIPs and hostNetwork pods', () => {
    const directory = new PodDirectory();
    directory.upsert(running(client, ['10.128.0.2', 'fd00:10:128::2']));
    directory.upsert(running(pod({ ...calicoNode, nodeName: NODE_B, ips: ['10.128.0.3'] })));
    expect(directory.nodeByIp('10.128.0.2')).toBe(NODE_A);
    expect(directory.nodeByIp('fd00:0010:0128:0000:0000:0000:0000:0002')).toBe(NODE_A);
    expect(directory.nodeByIp('10.128.0.3')).toBe(NODE_B);
    expect(directory.nodeByIp('10.4.1.6')).toBeUndefined();
    directory.remove('uid-client');
    expect(directory.nodeByIp('10.128.0.2')).toBeUndefined();
  });

  it('takes declared node addresses first and forgets them with the node', () => {
    const directory = new PodDirectory();
    directory.setNodeAddresses(NODE_B, ['10.128.0.3', 'not-an-ip']);
    expect(directory.nodeByIp('10.128.0.3')).toBe(NODE_B);
    directory.setNodeAddresses(NODE_B, ['10.128.0.33']);
    expect(directory.nodeByIp('10.128.0.3')).toBeUndefined();
    directory.removeNode(NODE_B);
    expect(directory.nodeByIp('10.128.0.33')).toBeUndefined();
  });
});

describe('peerName', () => {
  const directory = new PodDirectory();
  directory.upsert(running(client, ['10.128.0.2']));
  directory.upsert(running(server, ['10.128.0.3']));
  directory.upsert(running(calicoNode));
  directory.upsert({
    pod: pod({ name: 'pending', uid: 'uid-pending', ips: ['10.4.1.9'] }),
    running: false,
    hostIps: [],
  });
  const name = (ip: string, podIdentifier: PodIdentifier = 'namespace') =>
    peerName(ip, directory, { podIdentifier });

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
    expect(peerName('203.0.113.50', directory, { podIdentifier: 'name' }, dns)).toBe(
      'host-203.0.113.50.example',
    );
    expect(peerName('10.4.0.16', directory, { podIdentifier: 'name' }, dns)).toBe(
      'netperf-server-42010a80017f',
    );
    expect(peerName('10.128.0.2', directory, { podIdentifier: 'name' }, dns)).toBe(NODE_A);
    expect(peerName('203.0.113.50', directory, { podIdentifier: 'name' }, { lookup: () => undefined })).toBe(
      '203.0.113.50',
    );
  });
});
