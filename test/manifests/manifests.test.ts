// Every shipped manifest goes through the real API server's admission and validation with
// `kubectl apply --dry-run=server`; the RBAC is also applied for real and used by the agent in
// test/e2e/reference-story.test.ts.

import { readFile } from 'node:fs/promises';
import { loadAllYaml, type V1DaemonSet } from '@kubernetes/client-node';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, connect, kubectl } from '../support/cluster.ts';

describe('manifests', () => {
  let c: Cluster;
  beforeAll(() => {
    c = connect(inject('kubeconfig'));
  });

  for (const dir of ['manifests/', 'manifests/file-mode/', 'manifests/kmsg-mode/']) {
    it(`kubectl apply -k ${dir} passes server-side dry run`, async () => {
      const out = await kubectl(c, ['apply', '-k', dir, '--dry-run=server']);
      expect(out).toContain('serviceaccount/kube-iptables-tailer');
      expect(out).toContain('clusterrole.rbac.authorization.k8s.io/kube-iptables-tailer');
      expect(out).toContain('clusterrolebinding.rbac.authorization.k8s.io/kube-iptables-tailer');
      expect(out).toContain('daemonset.apps/kube-iptables-tailer');
    });
  }

  it('file mode reads the log directory, journal mode the journal', async () => {
    const journal = await kubectl(c, ['kustomize', 'manifests/']);
    expect(journal).toMatch(/name: JOURNAL_DIRECTORY\s+value: \/var\/log\/journal/);
    const file = await kubectl(c, ['kustomize', 'manifests/file-mode/']);
    expect(file).toMatch(/name: IPTABLES_LOG_PATH\s+value: \/var\/log\/kern.log/);
    expect(file).not.toContain('JOURNAL_DIRECTORY');
  });

  it('kmsg mode mounts /dev/kmsg alone, read-only, and runs privileged for the device', async () => {
    const [daemonSet] = (
      loadAllYaml(await kubectl(c, ['kustomize', 'manifests/kmsg-mode/'])) as V1DaemonSet[]
    ).filter((o) => o.kind === 'DaemonSet');
    const spec = daemonSet?.spec?.template.spec;
    const container = spec?.containers[0];
    expect(container?.env?.[0]).toEqual({ name: 'KMSG_PATH', value: '/dev/kmsg' });
    expect(container?.volumeMounts).toEqual([
      { name: 'kmsg', mountPath: '/dev/kmsg', readOnly: true },
      { name: 'checkpoint', mountPath: '/var/lib/kube-iptables-tailer' },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(spec?.volumes?.map((v) => v.hostPath?.path ?? v.name)).toEqual([
      '/dev/kmsg',
      '/var/lib/kube-iptables-tailer',
      'tmp',
    ]);
    expect(spec?.volumes?.[0]?.hostPath?.type).toBe('CharDevice');
    expect(container?.securityContext).toMatchObject({ privileged: true, readOnlyRootFilesystem: true });
  });

  it('the ClusterRole grants exactly what the agent needs, no wildcards', async () => {
    const docs = loadAllYaml(await readFile('manifests/base/rbac.yaml', 'utf8')) as {
      kind: string;
      rules?: { resources: string[]; verbs: string[] }[];
    }[];
    const rules = docs.find((item) => item.kind === 'ClusterRole')?.rules ?? [];
    expect(Object.fromEntries(rules.map((rule) => [rule.resources.join(','), rule.verbs.sort()]))).toEqual({
      pods: ['list', 'watch'],
      nodes: ['list', 'watch'],
      events: ['create', 'patch'],
    });
  });

  // Applied for real: a dry run cannot create the namespace its pods need. The Calico policies of the
  // example need Calico's API server, which this control plane does not have.
  it('the netperf example workload applies', async () => {
    const out = await kubectl(c, ['apply', '-f', 'manifests/examples/netperf/netperf.yaml']);
    expect(out).toContain('pod/netperf-server');
    expect(out).toContain('pod/netperf-client');
  });
});
