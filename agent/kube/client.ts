import { accessSync, constants } from 'node:fs';
import { type ConfigurationOptions, KubeConfig, Observable } from '@kubernetes/client-node';
import { type Config, ConfigError } from '../config.ts';

type Env = Readonly<Record<string, string | undefined>>;

/** Where a pod's ServiceAccount is mounted (the same paths the client reads). */
const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

function codeOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The first line of an error's message: YAML errors quote the offending text over several lines. */
function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0] ?? '';
}

/** Why a file the credentials name cannot be read, or null when it can. */
function unreadable(path: string): string | null {
  try {
    accessSync(path, constants.R_OK);
    return null;
  } catch (err) {
    return codeOf(err) === 'ENOENT' ? 'no such file' : `cannot be read (${codeOf(err) ?? firstLine(err)})`;
  }
}

/**
 * What the client accepts as the server of the current context: an http(s) URL, plain http only with
 * insecure-skip-tls-verify (client-node refuses it otherwise, at the first request); files it names
 * readable. Null when usable.
 */
function credentialProblem(kc: KubeConfig): string | null {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (cluster === null || user === null) {
    return 'not a kubeconfig: expected a current-context naming a cluster and a user';
  }
  if (!URL.canParse(cluster.server) || !/^https?:$/.test(new URL(cluster.server).protocol)) {
    return `server ${JSON.stringify(cluster.server)} is not an http(s) URL`;
  }
  if (cluster.server.startsWith('http:') && !cluster.skipTLSVerify) {
    return `server ${cluster.server} is plain http, which the Kubernetes client accepts only with insecure-skip-tls-verify: true; use https://`;
  }
  for (const [what, file] of [
    ['certificate-authority', cluster.caFile],
    ['client-certificate', user.certFile],
    ['client-key', user.keyFile],
  ] as const) {
    const problem = typeof file === 'string' && file !== '' ? unreadable(file) : null;
    if (problem !== null) return `${what} file ${file}: ${problem}`;
  }
  return null;
}

function fromFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    const code = codeOf(err);
    const problem =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'a directory, not a file'
          : code !== undefined
            ? `cannot be read (${code})`
            : `not a kubeconfig: ${firstLine(err)}`;
    throw new ConfigError([`KUBECONFIG=${path}: ${problem}; expected a kubeconfig file`]);
  }
  const problem = credentialProblem(kc);
  if (problem !== null) throw new ConfigError([`KUBECONFIG=${path}: ${problem}`]);
  return kc;
}

/** The pod's ServiceAccount; outside a pod (no service environment, no token) a clear error, not a bad URL. */
function fromCluster(env: Env, server: string | null): KubeConfig {
  if (server === null && (env.KUBERNETES_SERVICE_HOST ?? '') === '') {
    throw new ConfigError([
      'KUBECONFIG is not set and this is not a pod (KUBERNETES_SERVICE_HOST is unset): set KUBECONFIG to a kubeconfig file, or run the agent in a pod with a ServiceAccount',
    ]);
  }
  const token = `${SERVICE_ACCOUNT}/token`;
  const missing = unreadable(token);
  if (missing !== null) {
    throw new ConfigError([
      `KUBECONFIG is not set and the in-cluster ServiceAccount token ${token}: ${missing}; mount the ServiceAccount token (automountServiceAccountToken) or set KUBECONFIG`,
    ]);
  }
  const kc = new KubeConfig();
  kc.loadFromCluster();
  // With KUBE_API_SERVER the server is replaced first, and checked then.
  const problem = server === null ? credentialProblem(kc) : null;
  if (problem !== null)
    throw new ConfigError([`in-cluster ServiceAccount (KUBECONFIG is not set): ${problem}`]);
  return kc;
}

/**
 * KUBECONFIG when set (running outside a cluster), else the pod's in-cluster ServiceAccount. KUBE_API_SERVER
 * replaces the server address either way, as in the original (useful when kube-proxy is not set up yet).
 * Credentials the client could not use are a ConfigError naming the variable or file, so that the agent
 * stops at start instead of retrying requests that can never work.
 */
export function loadKubeConfig(config: Pick<Config, 'kubeApiServer'>, env: Env = process.env): KubeConfig {
  const path = env.KUBECONFIG;
  const server = config.kubeApiServer;
  const kc = path !== undefined && path !== '' ? fromFile(path) : fromCluster(env, server);
  if (server === null) return kc;
  kc.loadFromOptions({
    clusters: kc.clusters.map((cluster) => ({ ...cluster, server })),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  const problem = credentialProblem(kc);
  if (problem !== null) throw new ConfigError([`KUBE_API_SERVER=${server}: ${problem}`]);
  return kc;
}

/**
 * Per-call client options that give every HTTP request (each page of a list too) the signal `make` returns:
 * the client has no request timeout of its own, and a black-holed API server must not hang a caller.
 */
export function requestSignal(make: () => AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(make());
          return new Observable(Promise.resolve(context));
        },
        post: (context) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
