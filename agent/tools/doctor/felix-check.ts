/**
 * doctor's look at Calico's Felix: the log prefix it renders into its Log rules (FelixConfiguration
 * `default`, `spec.logPrefix`, `calico-packet` when unset), and whether IPTABLES_LOG_PREFIX matches it.
 * Optional: reading it needs `get` on felixconfigurations, which the agent's role does not grant; without
 * it, or without Calico, the check says so and is skipped (see felixCheck in report.ts).
 */

import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { classifyApiError } from '../../kube/errors.ts';
import { field } from '../../kube/objects.ts';
import { printable } from './census.ts';
import { describeError, timeoutOptions } from './requests.ts';
import type { FelixReport } from './types.ts';

/** Felix's own default, used when spec.logPrefix is unset. */
const FELIX_DEFAULT_PREFIX = 'calico-packet';

/** Where Calico keeps FelixConfiguration: its API server's group first, then the CRDs behind it. */
const APIS = [
  { group: 'projectcalico.org', version: 'v3' },
  { group: 'crd.projectcalico.org', version: 'v1' },
] as const;

/** Never throws: whatever goes wrong is in the report. */
export async function checkFelix(kubeConfig: KubeConfig): Promise<FelixReport> {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  let forbidden: string | null = null;
  for (const { group, version } of APIS) {
    try {
      const object: unknown = await custom.getClusterCustomObject(
        { group, version, plural: 'felixconfigurations', name: 'default' },
        timeoutOptions(),
      );
      const logPrefix = field(field(object, 'spec'), 'logPrefix');
      return {
        api: `${group}/${version}`,
        logPrefix:
          typeof logPrefix === 'string' && logPrefix !== '' ? printable(logPrefix) : FELIX_DEFAULT_PREFIX,
        reason: null,
        error: null,
      };
    } catch (err) {
      const { status } = classifyApiError(err);
      if (status === 404) continue;
      if (status === 403) {
        forbidden ??= describeError(err);
        continue;
      }
      return { api: null, logPrefix: null, reason: 'error', error: describeError(err) };
    }
  }
  return forbidden === null
    ? { api: null, logPrefix: null, reason: 'not_found', error: null }
    : { api: null, logPrefix: null, reason: 'forbidden', error: forbidden };
}
