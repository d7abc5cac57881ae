// The Helm chart (charts/kube-iptables-tailer) with a helm built from its Go module (test/helm): strict lint,
// its objects through the real API server's validation, the same objects as manifests/ for the same
// settings, values.schema.json refusing bad values, and a real `helm install` whose RBAC the agent then runs
// with to write an Event.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CoreV1Event, loadAllYaml, type V1DaemonSet } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, metricValue, startAgent, waitFor } from '../e2e/agent-process.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  createToken,
  deletePod,
  kubectl,
  setPodRunning,
  tokenKubeconfig,
  uniqueName,
} from '../support/cluster.ts';
import { appendJournal, tempDir } from '../support/journal.ts';

const CHART = 'charts/kube-iptables-tailer';
const BUILD_HELM = join(import.meta.dirname, '../helm/build.ts');

// Labels Helm's conventions add to every object's metadata (not to the DaemonSet's selector or pod
// template, which stay as in manifests/): which chart, release and version made the object.
const HELM_LABELS = [
  'helm.sh/chart',
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/version',
];

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

let helmBinary = '';
let helmHome = '';

function helm(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      helmBinary,
      args,
      {
        maxBuffer: 64 * 1024 * 1024,
        // Its own repository, cache and config directories: nothing read from or left in the user's.
        env: {
          ...process.env,
          HELM_CACHE_HOME: join(helmHome, 'cache'),
          HELM_CONFIG_HOME: join(helmHome, 'config'),
          HELM_DATA_HOME: join(helmHome, 'data'),
        },
      },
      (err, stdout, stderr) =>
        err ? reject(new Error(`helm ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

function objects(yaml: string): K8sObject[] {
  return (loadAllYaml(yaml) as (K8sObject | null)[]).filter((doc): doc is K8sObject => doc !== null);
}

function key(o: K8sObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

function withoutHelmLabels(o: K8sObject): K8sObject {
  const labels = Object.fromEntries(
    Object.entries(o.metadata.labels ?? {}).filter(([label]) => !HELM_LABELS.includes(label)),
  );
  return { ...o, metadata: { ...o.metadata, labels } };
}

/** The chart's objects for a release named and placed as manifests/ names and places its objects. */
async function templateLikeManifests(values: string[]): Promise<Map<string, K8sObject>> {
  const out = await helm([
    'template',
    'kube-iptables-tailer',
    CHART,
    '--namespace',
    'kube-system',
    ...values,
  ]);
  return new Map(objects(out).map((o) => [key(o), withoutHelmLabels(o)]));
}

describe('the Helm chart', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    helmHome = await mkdtemp(join(tmpdir(), 'helm-home-'));
    // A process of its own: the first build takes minutes, which would block this worker's event loop.
    const built = await promisify(execFile)(process.execPath, [BUILD_HELM], { encoding: 'utf8' });
    helmBinary = built.stdout.trim();
  });

  it('passes helm lint --strict, in every source mode', async () => {
    for (const mode of ['journal', 'file', 'kmsg']) {
      const out = await helm(['lint', '--strict', CHART, '--set', `source.mode=${mode}`]);
      expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
  });

  const overlays = [
    { mode: 'journal', dir: 'manifests/' },
    { mode: 'file', dir: 'manifests/file-mode/' },
    { mode: 'kmsg', dir: 'manifests/kmsg-mode/' },
  ];
  for (const { mode, dir } of overlays) {
    it(`source.mode=${mode} renders the objects of ${dir}`, async () => {
      const chart = await templateLikeManifests(['--set', `source.mode=${mode}`]);
      const kustomized = objects(await kubectl(c, ['kustomize', dir]));
      expect([...chart.keys()].sort()).toEqual(kustomized.map(key).sort());
      for (const o of kustomized) expect(chart.get(key(o)), key(o)).toEqual(o);
    });
  }

  it('kmsg mode reads the kernel ring buffer from a read-only character device', async () => {
    const chart = await templateLikeManifests(['--set', 'source.mode=kmsg']);
    const spec = (chart.get('DaemonSet/kube-system/kube-iptables-tailer') as V1DaemonSet).spec?.template.spec;
    const container = spec?.containers[0];
    expect(container?.env?.[0]).toEqual({ name: 'KMSG_PATH', value: '/dev/kmsg' });
    expect(container?.env?.map((e) => e.name)).not.toContain('JOURNAL_DIRECTORY');
    expect(container?.volumeMounts?.[0]).toEqual({ name: 'kmsg', mountPath: '/dev/kmsg', readOnly: true });
    expect(spec?.volumes?.[0]).toEqual({ name: 'kmsg', hostPath: { path: '/dev/kmsg', type: 'CharDevice' } });
    expect(container?.volumeMounts?.map((m) => m.name)).toEqual(['kmsg', 'checkpoint', 'tmp']);
    expect(container?.securityContext).toMatchObject({ privileged: true, readOnlyRootFilesystem: true });
    expect(container?.securityContext?.allowPrivilegeEscalation).toBeUndefined();
    // With a device plugin providing the device: the chart's own least-privilege context, unchanged.
    const plugin = await templateLikeManifests([
      '--set',
      'source.mode=kmsg',
      '--set',
      'source.kmsg.privileged=false',
    ]);
    const pluginSpec = (plugin.get('DaemonSet/kube-system/kube-iptables-tailer') as V1DaemonSet).spec
      ?.template.spec;
    expect(pluginSpec?.containers[0]?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(pluginSpec?.containers[0]?.securityContext?.privileged).toBeUndefined();
  });

  // Every value set away from its default; the ServiceMonitor is left out, as this control plane has no
  // Prometheus Operator CRDs.
  const everything = [
    'config.podIdentifierLabel=app',
    'config.podIdentifier=label',
    'config.podWatchScope=cluster',
    'config.kubeEventDisplayReason=Dropped',
    'config.kubeEventSourceComponentName=example.com/tailer',
    'config.metricsServerPort=9100',
    'config.packetDropExpirationMinutes=5',
    'config.repeatedEventsIntervalMinutes=0',
    'config.watchLogsIntervalSeconds=2',
    'config.packetDropChannelBufferSize=500',
    'config.packetDropLogTimeLayout=2006-01-02T15:04:05Z07:00',
    'config.kubeApiServer=https://10.96.0.1:443',
    'config.logLevel=debug',
    'config.eventRateLimitPerSecond=50',
    'config.eventBurstPerPod=3',
    'config.shutdownGraceSeconds=20',
    'config.reverseDns=false',
    'commonLabels.team=network',
    'commonAnnotations.owner=network',
    'podLabels.tier=node',
    'nodeSelector.kubernetes\\.io/os=linux',
    'priorityClassName=system-cluster-critical',
    'dashboard.enabled=true',
    'rbac.extraRules[0].apiGroups[0]=coordination.k8s.io',
    'rbac.extraRules[0].resources[0]=leases',
    'rbac.extraRules[0].verbs[0]=get',
  ];

  it('renders objects the API server accepts (server-side dry run), with every value set', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chart-'));
    for (const mode of ['journal', 'file', 'kmsg']) {
      const file = join(dir, `${mode}.yaml`);
      const sets = ['--set', `source.mode=${mode}`, ...everything.flatMap((set) => ['--set', set])];
      await writeFile(file, await helm(['template', 'kit', CHART, '--namespace', 'kube-system', ...sets]));
      const out = await kubectl(c, ['apply', '--dry-run=server', '-f', file]);
      for (const made of [
        'serviceaccount/kit-kube-iptables-tailer',
        'clusterrole.rbac.authorization.k8s.io/kit-kube-iptables-tailer',
        'clusterrolebinding.rbac.authorization.k8s.io/kit-kube-iptables-tailer',
        'daemonset.apps/kit-kube-iptables-tailer',
        'configmap/kit-kube-iptables-tailer-dashboard',
      ]) {
        expect(out).toContain(made);
      }
    }
  });

  it('sets each agent variable from its value', async () => {
    const sets = everything.flatMap((set) => ['--set', set]);
    const ds = objects(await helm(['template', 'kit', CHART, ...sets])).find((o) => o.kind === 'DaemonSet') as
      | V1DaemonSet
      | undefined;
    const env = Object.fromEntries(
      (ds?.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]),
    );
    expect(env).toEqual({
      JOURNAL_DIRECTORY: '/var/log/journal',
      IPTABLES_LOG_PREFIX: 'calico-packet',
      POD_IDENTIFIER: 'label',
      POD_IDENTIFIER_LABEL: 'app',
      POD_WATCH_SCOPE: 'cluster',
      CHECKPOINT_DIRECTORY: '/var/lib/kube-iptables-tailer',
      METRICS_SERVER_PORT: '9100',
      NODE_NAME: { fieldRef: { fieldPath: 'spec.nodeName' } },
      NODE_OPTIONS: '--max-old-space-size=128 --max-semi-space-size=2',
      KUBE_EVENT_DISPLAY_REASON: 'Dropped',
      KUBE_EVENT_SOURCE_COMPONENT_NAME: 'example.com/tailer',
      PACKET_DROP_EXPIRATION_MINUTES: '5',
      REPEATED_EVENTS_INTERVAL_MINUTES: '0',
      WATCH_LOGS_INTERVAL_SECONDS: '2',
      PACKET_DROP_CHANNEL_BUFFER_SIZE: '500',
      PACKET_DROP_LOG_TIME_LAYOUT: '2006-01-02T15:04:05Z07:00',
      KUBE_API_SERVER: 'https://10.96.0.1:443',
      LOG_LEVEL: 'debug',
      EVENT_RATE_LIMIT_PER_SECOND: '50',
      EVENT_BURST_PER_POD: '3',
      SHUTDOWN_GRACE_SECONDS: '20',
      REVERSE_DNS: 'false',
    });
    const pod = ds?.spec?.template;
    expect(pod?.metadata?.annotations?.['prometheus.io/port']).toBe('9100');
    expect(pod?.spec?.containers[0]?.ports?.[0]?.containerPort).toBe(9100);
  });

  it('renders a ServiceMonitor and a headless Service for it when asked', async () => {
    const out = objects(
      await helm([
        'template',
        'kit',
        CHART,
        '--set',
        'serviceMonitor.enabled=true',
        '--set',
        'serviceMonitor.labels.release=prom',
      ]),
    );
    const monitor = out.find((o) => o.kind === 'ServiceMonitor');
    expect(monitor?.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor?.metadata.labels?.release).toBe('prom');
    const service = out.find((o) => o.kind === 'Service');
    expect(service?.spec).toMatchObject({ clusterIP: 'None', ports: [{ name: 'metrics', port: 9090 }] });
    expect(monitor?.spec).toMatchObject({
      selector: {
        matchLabels: {
          'app.kubernetes.io/name': 'kube-iptables-tailer',
          'app.kubernetes.io/instance': 'kit',
        },
      },
      endpoints: [{ port: 'metrics', path: '/metrics' }],
    });
    // Off by default.
    expect(objects(await helm(['template', 'kit', CHART])).map((o) => o.kind)).not.toContain(
      'ServiceMonitor',
    );
  });

  it("ships the dashboard of dashboards/ in a ConfigMap Grafana's sidecar picks up", async () => {
    const out = objects(await helm(['template', 'kit', CHART, '--set', 'dashboard.enabled=true']));
    const map = out.find((o) => o.kind === 'ConfigMap') as
      | (K8sObject & { data: Record<string, string> })
      | undefined;
    expect(map?.metadata.labels?.grafana_dashboard).toBe('1');
    const shipped = await readFile('dashboards/kube-iptables-tailer.json', 'utf8');
    expect(JSON.parse(map?.data['kube-iptables-tailer.json'] ?? '')).toEqual(JSON.parse(shipped));
    // helm package follows the link too: the packaged chart holds the file itself.
    const dir = await mkdtemp(join(tmpdir(), 'chart-package-'));
    await helm(['package', CHART, '--destination', dir]);
    const packaged = objects(
      await helm([
        'template',
        'kit',
        join(dir, 'kube-iptables-tailer-0.1.0.tgz'),
        '--set',
        'dashboard.enabled=true',
      ]),
    ).find((o) => o.kind === 'ConfigMap') as (K8sObject & { data: Record<string, string> }) | undefined;
    expect(packaged?.data).toEqual(map?.data);
  });

  it('refuses bad values at template time, naming the value and what it accepts', async () => {
    await expect(helm(['template', 'kit', CHART, '--set', 'source.mode=syslog'])).rejects.toThrow(
      /\/source\/mode': value must be one of 'journal', 'file', 'kmsg'/,
    );
    await expect(helm(['template', 'kit', CHART, '--set', 'config.logLevl=debug'])).rejects.toThrow(
      /\/config': additional properties 'logLevl' not allowed/,
    );
    await expect(helm(['template', 'kit', CHART, '--set', 'config.eventBurstPerPod=0'])).rejects.toThrow(
      /\/config\/eventBurstPerPod': minimum: got 0, want 1/,
    );
    await expect(
      helm(['template', 'kit', CHART, '--set', 'config.podWatchScope=everything']),
    ).rejects.toThrow(/\/config\/podWatchScope'/);
  });

  describe('helm install', () => {
    const NODE = 'helm-node';
    // Addresses no other test gives its pods: integration files share one API server.
    const CLIENT = { name: 'helm-client', ip: '10.79.1.6' };
    const SERVER = { name: 'helm-server', ip: '10.79.0.16' };
    const release = uniqueName('kit');
    let namespace = '';
    let agent: AgentProcess | undefined;

    beforeAll(async () => {
      namespace = await createNamespace(c, uniqueName('helm'));
      await helm(['install', release, CHART, '--namespace', namespace, '--kubeconfig', c.kubeconfig]);
    });

    afterAll(async () => {
      const stopped = await agent?.stop();
      for (const pod of [CLIENT, SERVER]) await deletePod(c, namespace, pod.name).catch(() => undefined);
      await helm(['uninstall', release, '--namespace', namespace, '--kubeconfig', c.kubeconfig]);
      // Stays Terminating (no controller manager here), but holds nothing any more.
      await c.core.deleteNamespace({ name: namespace });
      expect(stopped).toBe(0);
    });

    it("the agent runs with the release's ServiceAccount and writes an Event", async () => {
      const fullname = `${release}-kube-iptables-tailer`;
      const status = await helm(['status', release, '--namespace', namespace, '--kubeconfig', c.kubeconfig]);
      expect(status).toContain('STATUS: deployed');
      // The agent gets the installed DaemonSet's settings, with the node's paths swapped for test directories.
      const ds = JSON.parse(
        await kubectl(c, ['get', 'daemonset', fullname, '-n', namespace, '-o', 'json']),
      ) as V1DaemonSet;
      const installed = Object.fromEntries(
        (ds.spec?.template.spec?.containers[0]?.env ?? []).flatMap((e) =>
          // The test agent's metrics port is its own free one.
          e.value && e.name !== 'METRICS_SERVER_PORT' ? [[e.name, e.value]] : [],
        ),
      );
      for (const pod of [CLIENT, SERVER]) {
        await createPod(c, { namespace, name: pod.name, nodeName: NODE });
        await setPodRunning(c, namespace, pod.name, { podIPs: [pod.ip], hostIP: '10.128.0.9' });
      }
      const journal = await tempDir('journal-');
      const file = join(journal, 'system.journal');
      await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
      agent = await startAgent({
        ...installed,
        KUBECONFIG: await tokenKubeconfig(c, await createToken(c, namespace, fullname)),
        JOURNAL_DIRECTORY: journal,
        CHECKPOINT_DIRECTORY: await tempDir('checkpoint-'),
        NODE_NAME: NODE,
      });
      await appendJournal(file, [
        {
          message: `${installed.IPTABLES_LOG_PREFIX}: IN=cali6e7bb88b982 OUT=eth0 SRC=${CLIENT.ip} DST=${SERVER.ip} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=5432 WINDOW=42600 RES=0x00 SYN URGP=0`,
          hostname: NODE,
        },
      ]);
      const running = agent;
      await waitFor(
        async () =>
          metricValue(await running.metrics(), 'kube_iptables_tailer_events_created_total') >= 2
            ? true
            : undefined,
        20_000,
        'the drop written as Events',
      );
      const events = await c.core.listNamespacedEvent({ namespace });
      const drops = events.items.filter((e: CoreV1Event) => e.reason === 'PacketDrop');
      expect(drops.map((e) => e.involvedObject.name).sort()).toEqual([CLIENT.name, SERVER.name]);
    });
  });
});
