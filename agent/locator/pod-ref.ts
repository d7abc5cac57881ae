import type { V1Pod } from '@kubernetes/client-node';
import { canonicalIp } from '../net.ts';
import type { PodState } from './pod-directory.ts';

/** Canonical, de-duplicated addresses; the singular field (podIP, hostIP) repeats the list's first entry. */
function addresses(list: unknown, single: unknown): string[] {
  const entries = Array.isArray(list) ? list.map((entry: { ip?: unknown } | null) => entry?.ip) : [];
  const ips = [...entries, single]
    .filter((ip) => typeof ip === 'string')
    .map(canonicalIp)
    .filter((ip) => ip !== null);
  return [...new Set(ips)];
}

/**
 * The part of a core/v1 Pod the pipeline needs. Written defensively because replay feeds it objects from a
 * user's file rather than from the API: a pod without a name is unusable (null), a missing namespace is the
 * API's default, and POD_IDENTIFIER_LABEL ('' when unset) is read here so naming never sees raw labels.
 */
export function podState(pod: V1Pod, identifierLabel: string): PodState | null {
  const { metadata, spec, status } = pod;
  if (typeof metadata?.name !== 'string' || metadata.name === '') return null;
  const label = identifierLabel === '' ? undefined : metadata.labels?.[identifierLabel];
  return {
    pod: {
      namespace:
        typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default',
      name: metadata.name,
      uid: typeof metadata.uid === 'string' ? metadata.uid : '',
      nodeName: typeof spec?.nodeName === 'string' ? spec.nodeName : '',
      hostNetwork: spec?.hostNetwork === true,
      label: typeof label === 'string' ? label : null,
      ips: addresses(status?.podIPs, status?.podIP),
    },
    running: status?.phase === 'Running',
    hostIps: addresses(status?.hostIPs, status?.hostIP),
  };
}
