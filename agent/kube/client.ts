import { type ConfigurationOptions, KubeConfig, Observable } from '@kubernetes/client-node';
import type { Config } from '../config.ts';

/**
 * KUBECONFIG when set (running outside a cluster), else the pod's in-cluster ServiceAccount. KUBE_API_SERVER
 * replaces the server address either way, as in the original (useful when kube-proxy is not set up yet).
 */
export function loadKubeConfig(config: Pick<Config, 'kubeApiServer'>, env = process.env): KubeConfig {
  const kc = new KubeConfig();
  const path = env.KUBECONFIG;
  if (path !== undefined && path !== '') kc.loadFromFile(path);
  else kc.loadFromCluster();
  const server = config.kubeApiServer;
  if (server !== null) {
    kc.loadFromOptions({
      clusters: kc.clusters.map((cluster) => ({ ...cluster, server })),
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
  }
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
