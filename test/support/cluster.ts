// Helpers for end-to-end tests against the control plane of test/setup/controlplane.ts.
// There is no kubelet and no kube-controller-manager: tests make every object they need
// (ServiceAccounts included), set pod status themselves, and delete pods with a zero grace
// period because nothing would ever confirm a graceful deletion. Deleted namespaces stay
// Terminating forever, so tests use a fresh namespace each and leave it.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig, type V1NodeAddress, type V1Pod } from '@kubernetes/client-node';

export interface Cluster {
  kubeconfig: string;
  kc: KubeConfig;
  core: CoreV1Api;
}

export function connect(kubeconfig: string): Cluster {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { kubeconfig, kc, core: kc.makeApiClient(CoreV1Api) };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function createNamespace(c: Cluster, name = uniqueName('test')): Promise<string> {
  await c.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

export async function createServiceAccount(c: Cluster, namespace: string, name: string): Promise<void> {
  await c.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
}

/** Mints a token for the ServiceAccount through the TokenRequest API (`kubectl create token`). */
export async function createToken(c: Cluster, namespace: string, serviceAccount: string): Promise<string> {
  return (await kubectl(c, ['create', 'token', serviceAccount, '-n', namespace])).trim();
}

/**
 * Applies the shipped RBAC (manifests/base/rbac.yaml) and mints a token for its ServiceAccount, so an
 * agent under test has exactly the rights a user grants it, no broader.
 */
export async function shippedAgentToken(c: Cluster): Promise<string> {
  await kubectl(c, ['apply', '-f', 'manifests/base/rbac.yaml']);
  return createToken(c, 'kube-system', 'kube-iptables-tailer');
}

/** Writes a kubeconfig for the same server that authenticates with only this bearer token; returns its path. */
export async function tokenKubeconfig(c: Cluster, token: string): Promise<string> {
  const cluster = c.kc.getCurrentCluster();
  if (!cluster) throw new Error(`${c.kubeconfig} has no current cluster`);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'token', token }],
    contexts: [{ name: 'token', cluster: cluster.name, user: 'token' }],
    currentContext: 'token',
  });
  const path = join(await mkdtemp(join(tmpdir(), 'kubeconfig-')), 'kubeconfig');
  await writeFile(path, kc.exportConfig(), { mode: 0o600 });
  return path;
}

export interface PodOptions {
  namespace: string;
  name: string;
  labels?: Record<string, string>;
  hostNetwork?: boolean;
  nodeName?: string;
  serviceAccountName?: string;
}

export function createPod(c: Cluster, o: PodOptions): Promise<V1Pod> {
  return c.core.createNamespacedPod({
    namespace: o.namespace,
    body: {
      metadata: { name: o.name, labels: o.labels ?? {} },
      spec: {
        hostNetwork: o.hostNetwork ?? false,
        nodeName: o.nodeName,
        serviceAccountName: o.serviceAccountName,
        containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }],
      },
    },
  });
}

export interface RunningStatus {
  /** Primary IP first; at most one per family. */
  podIPs: string[];
  hostIP: string;
}

/** Writes what a kubelet would report for a started pod, through the status subresource. */
export async function setPodRunning(
  c: Cluster,
  namespace: string,
  name: string,
  s: RunningStatus,
): Promise<V1Pod> {
  const pod = await c.core.readNamespacedPod({ name, namespace });
  const now = new Date();
  const containerName = pod.spec?.containers[0]?.name ?? 'main';
  pod.status = {
    phase: 'Running',
    podIP: s.podIPs[0],
    podIPs: s.podIPs.map((ip) => ({ ip })),
    hostIP: s.hostIP,
    hostIPs: [{ ip: s.hostIP }],
    startTime: now,
    conditions: ['Initialized', 'ContainersReady', 'Ready', 'PodScheduled'].map((type) => ({
      type,
      status: 'True',
      lastTransitionTime: now,
    })),
    containerStatuses: [
      {
        name: containerName,
        image: 'registry.k8s.io/pause:3.10',
        imageID: '',
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      },
    ],
  };
  return c.core.replaceNamespacedPodStatus({ name, namespace, body: pod });
}

/** A Node object with these status addresses (there is no kubelet to report them); delete it with deleteNode. */
export async function createNode(c: Cluster, name: string, addresses: V1NodeAddress[]): Promise<void> {
  await c.core.createNode({ body: { metadata: { name } } });
  await setNodeAddresses(c, name, addresses);
}

/** Writes what a kubelet would report as the node's addresses, through the status subresource. */
export async function setNodeAddresses(c: Cluster, name: string, addresses: V1NodeAddress[]): Promise<void> {
  const node = await c.core.readNode({ name });
  node.status = { ...node.status, addresses };
  await c.core.replaceNodeStatus({ name, body: node });
}

export async function deleteNode(c: Cluster, name: string): Promise<void> {
  await c.core.deleteNode({ name });
}

export async function deletePod(c: Cluster, namespace: string, name: string): Promise<void> {
  await c.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
}

/** Runs kubectl ($KUBECTL or the one on PATH) with the cluster's admin kubeconfig; resolves to stdout. */
export function kubectl(c: Cluster | string, args: string[]): Promise<string> {
  const kubeconfig = typeof c === 'string' ? c : c.kubeconfig;
  return new Promise((resolve, reject) => {
    execFile(
      process.env.KUBECTL ?? 'kubectl',
      ['--kubeconfig', kubeconfig, ...args],
      { maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

/** A control plane of a test file's own, which it may stop and restart without disturbing other files. */
export interface PrivateControlPlane {
  cluster: Cluster;
  /** Its state directory: the command lines of its etcd and kube-apiserver name it. */
  dir: string;
  /** Runs a testenv subcommand (stop-apiserver, start-apiserver, restart-apiserver) on it. */
  testenv(command: string): Promise<string>;
  down(): Promise<void>;
}

export async function privateControlPlane(): Promise<PrivateControlPlane> {
  const dir = await mkdtemp(join(tmpdir(), 'testenv-'));
  const cli = join(dirname(fileURLToPath(import.meta.url)), '../testenv/cli.ts');
  const testenv = (command: string): Promise<string> =>
    promisify(execFile)(process.execPath, [cli, command], { env: { ...process.env, TESTENV_DIR: dir } }).then(
      (result) => result.stdout,
    );
  const { kubeconfig } = JSON.parse((await testenv('up')).trim().split('\n').at(-1) ?? '') as {
    kubeconfig: string;
  };
  return { cluster: connect(kubeconfig), dir, testenv, down: async () => void (await testenv('down')) };
}
