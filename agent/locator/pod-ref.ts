import type { V1Pod } from '@kubernetes/client-node';
import { canonicalIp } from '../net.ts';
import type { PodState } from './pod-index.ts';

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
 * A timestamp as the client hands it over (a Date from a typed list call, RFC 3339 text from a watch event
 * or a pods file), in epoch ms; -Infinity when absent or unreadable, so that it sorts before any known time.
 */
function epochMs(value: unknown): number {
  const ms =
    value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}

/**
 * The part of a core/v1 Pod the pipeline needs. Written defensively because replay feeds it objects from a
 * user's file rather than from the API: a pod without a name is unusable (null), a missing namespace is the
 * API's default, and POD_IDENTIFIER_LABEL ('' when unset) is read here so naming never sees raw labels.
 * A hostNetwork pod uses its node's addresses, so those join its ips even when the API has not copied them
 * into podIPs.
 */
export function podState(pod: V1Pod, identifierLabel: string): PodState | null {
  const { metadata, spec, status } = pod;
  if (typeof metadata?.name !== 'string' || metadata.name === '') return null;
  const label = identifierLabel === '' ? undefined : metadata.labels?.[identifierLabel];
  const hostNetwork = spec?.hostNetwork === true;
  const hostIps = addresses(status?.hostIPs, status?.hostIP);
  const podIps = addresses(status?.podIPs, status?.podIP);
  return {
    pod: {
      namespace:
        typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default',
      name: metadata.name,
      uid: typeof metadata.uid === 'string' ? metadata.uid : '',
      nodeName: typeof spec?.nodeName === 'string' ? spec.nodeName : '',
      hostNetwork,
      label: typeof label === 'string' ? label : null,
      ips: hostNetwork ? [...new Set([...podIps, ...hostIps])] : podIps,
    },
    running: status?.phase === 'Running',
    hostIps,
    started: epochMs(status?.startTime),
    created: epochMs(metadata.creationTimestamp),
  };
}
