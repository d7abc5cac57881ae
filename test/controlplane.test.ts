import { beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  createServiceAccount,
  createToken,
  kubectl,
  setPodRunning,
  tokenKubeconfig,
} from './support/cluster.ts';

describe('test control plane', () => {
  let c: Cluster;
  let namespace: string;

  beforeAll(async () => {
    const kubeconfig = inject('kubeconfig');
    if (!kubeconfig)
      throw new Error('no kubeconfig provided: register test/setup/controlplane.ts as a globalSetup');
    c = connect(kubeconfig);
    namespace = await createNamespace(c);
  });

  it('answers kubectl version with the server it was told', async () => {
    const version = JSON.parse(await kubectl(c, ['version', '-o', 'json'])) as {
      serverVersion?: { major: string; minor: string; gitVersion: string };
    };
    expect(version.serverVersion?.major).toBe('1');
    expect(version.serverVersion?.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(c.kc.getCurrentCluster()?.server).toBe(inject('server'));
  });

  it('stores a pod and the Running status set on it', async () => {
    await createServiceAccount(c, namespace, 'agent');
    await createPod(c, {
      namespace,
      name: 'web',
      labels: { app: 'web' },
      nodeName: 'node-a',
      serviceAccountName: 'agent',
    });
    await setPodRunning(c, namespace, 'web', { podIPs: ['10.1.2.3', 'fd00::3'], hostIP: '192.0.2.10' });

    const pod = JSON.parse(await kubectl(c, ['get', 'pod', 'web', '-n', namespace, '-o', 'json'])) as {
      metadata: { labels: Record<string, string> };
      spec: { nodeName: string; hostNetwork?: boolean };
      status: { phase: string; podIP: string; podIPs: { ip: string }[]; hostIP: string };
    };
    expect(pod.metadata.labels).toEqual({ app: 'web' });
    expect(pod.spec.nodeName).toBe('node-a');
    expect(pod.spec.hostNetwork ?? false).toBe(false);
    expect(pod.status.phase).toBe('Running');
    expect(pod.status.podIP).toBe('10.1.2.3');
    expect(pod.status.podIPs).toEqual([{ ip: '10.1.2.3' }, { ip: 'fd00::3' }]);
    expect(pod.status.hostIP).toBe('192.0.2.10');
  });

  it('issues ServiceAccount tokens that authenticate', async () => {
    await createServiceAccount(c, namespace, 'reader');
    const token = await createToken(c, namespace, 'reader');
    expect(token.split('.')).toHaveLength(3);

    const review = JSON.parse(
      await kubectl(await tokenKubeconfig(c, token), ['auth', 'whoami', '-o', 'json']),
    ) as { status: { userInfo: { username: string } } };
    expect(review.status.userInfo.username).toBe(`system:serviceaccount:${namespace}:reader`);
  });
});
