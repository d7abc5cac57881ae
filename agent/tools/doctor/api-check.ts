/**
 * doctor's look at the API server, with the agent's own credentials (agent/kube/client.ts): can it be
 * reached, and does it grant each permission the agent uses (SelfSubjectAccessReview, cluster-wide like the
 * ClusterRole of manifests/base/rbac.yaml).
 */

import { AuthorizationV1Api, type KubeConfig, VersionApi } from '@kubernetes/client-node';
import { type Config, ConfigError } from '../../config.ts';
import { loadKubeConfig } from '../../kube/client.ts';
import { classifyApiError } from '../../kube/errors.ts';
import { printable } from './census.ts';
import { describeError, timeoutOptions } from './requests.ts';
import type { ApiReport, Permission } from './types.ts';

/**
 * Every call the agent makes: the pod and node list-watches of agent/locator, and Event create and merge
 * patch in agent/events/api.ts (which reads an existing Event with an empty patch, so it needs no `get`).
 */
export const REQUIRED_PERMISSIONS: readonly { resource: string; verb: string }[] = [
  { resource: 'pods', verb: 'list' },
  { resource: 'pods', verb: 'watch' },
  { resource: 'nodes', verb: 'list' },
  { resource: 'nodes', verb: 'watch' },
  { resource: 'events', verb: 'create' },
  { resource: 'events', verb: 'patch' },
];

type Env = Readonly<Record<string, string | undefined>>;

/** The server URL without anything but scheme, host, port and path (no user info). */
function serverOf(kubeConfig: KubeConfig): string | null {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (server === undefined) return null;
  try {
    const url = new URL(server);
    return printable(`${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`);
  } catch {
    return printable(server);
  }
}

async function permission(
  authorization: AuthorizationV1Api,
  resource: string,
  verb: string,
): Promise<Permission> {
  try {
    const review = await authorization.createSelfSubjectAccessReview(
      {
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: { resourceAttributes: { group: '', resource, verb } },
        },
      },
      timeoutOptions(),
    );
    return { resource, verb, allowed: review.status?.allowed === true, error: null };
  } catch (err) {
    return { resource, verb, allowed: null, error: describeError(err) };
  }
}

function isLocalFileError(err: unknown): boolean {
  const { code, syscall } = (err ?? {}) as { code?: unknown; syscall?: unknown };
  return (code === 'ENOENT' || code === 'EACCES') && syscall === 'open';
}

export interface ApiCheck {
  report: ApiReport;
  /** The agent's client configuration, when the API can be used. */
  kubeConfig: KubeConfig | null;
}

/** Never throws: whatever goes wrong is in the report. */
export async function checkApi(config: Config, env: Env = process.env): Promise<ApiCheck> {
  const credentials = env.KUBECONFIG !== undefined && env.KUBECONFIG !== '' ? 'kubeconfig' : 'in-cluster';
  const failed = (failure: ApiReport['failure'], error: string, server: string | null): ApiCheck => ({
    report: { server, credentials, reachable: false, failure, error, version: null, permissions: [] },
    kubeConfig: null,
  });
  let kubeConfig: KubeConfig;
  try {
    kubeConfig = loadKubeConfig(config, env);
  } catch (err) {
    // A ConfigError names the variable or file and what was expected (outside a pod without KUBECONFIG,
    // plain http the client refuses, ...), as `run` reports it.
    const detail =
      err instanceof ConfigError ? err.problems.join('; ') : `cannot load KUBECONFIG: ${describeError(err)}`;
    return failed('not_configured', printable(detail), null);
  }
  const server = serverOf(kubeConfig);
  let version: string | null;
  try {
    version = (await kubeConfig.makeApiClient(VersionApi).getCode({}, timeoutOptions())).gitVersion;
  } catch (err) {
    const { status } = classifyApiError(err);
    // The in-cluster CA or token file is missing: a pod without its ServiceAccount mount, not a network problem.
    if (isLocalFileError(err)) {
      return failed(
        'not_configured',
        `cannot use the ${credentials} credentials: ${describeError(err)}`,
        server,
      );
    }
    if (status === null) return failed('unreachable', describeError(err), server);
    if (status === 401) return failed('unauthorized', describeError(err), server);
    // Any other answer (a 403 where /version is not public) proves the server reachable.
    version = null;
  }
  const authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
  const permissions = await Promise.all(
    REQUIRED_PERMISSIONS.map(({ resource, verb }) => permission(authorization, resource, verb)),
  );
  return {
    report: { server, credentials, reachable: true, failure: null, error: null, version, permissions },
    kubeConfig,
  };
}
