/**
 * The shape of a `doctor` report: what `--json` prints, and what the checks and the text rendering read.
 * Every string in it that came from a log line or an API error has been through printable() (census.ts),
 * so printing it cannot forge terminal output.
 */

import type { PodWatchScope, SourceSetting } from '../../config.ts';
import type { LookupOutcome } from '../../locator/pod-lookup.ts';
import type { InvalidReason } from '../../parser/parse.ts';

/** A LOG-style prefix seen in the log and how many lines carried it; '' stands for LOG lines with none. */
export interface PrefixCount {
  prefix: string;
  count: number;
}

/** Prefixed lines the agent's parser refused for one reason, with the parser's (escaped) detail of the first. */
export interface InvalidGroup {
  reason: InvalidReason;
  count: number;
  example: string;
}

/** An address among the src/dst of the drops, and in how many drops it appears. */
export interface AddressCount {
  ip: string;
  count: number;
}

/** What the lines of the window say, whatever the source. */
export interface LineCensus {
  /** Kernel entries (journal) or lines (file) in the window. */
  entries: number;
  /** Lines that carry the configured prefix: parsed into drops or refused. */
  prefixed: number;
  drops: number;
  /** LOG-style prefixes of the other lines, most frequent first. */
  otherPrefixes: PrefixCount[];
  invalid: InvalidGroup[];
  /** The most frequent drop addresses, most frequent first. */
  addresses: AddressCount[];
}

/** Kmsg mode: what doctor found of the kernel's ring buffer. */
export interface KmsgReport {
  /** Records in the ring buffer, whatever their facility: all of them were read. */
  records: number;
  /** kernel.dmesg_restrict: 1 means reading /dev/kmsg needs CAP_SYSLOG; null where it cannot be read. */
  dmesgRestrict: number | null;
}

export interface SourceReport extends LineCensus {
  kind: SourceSetting['kind'];
  path: string;
  /** IPTABLES_LOG_PREFIX as the agent matches it. */
  prefix: string;
  windowMinutes: number;
  /** Start of the window, ISO 8601. */
  since: string;
  readable: boolean;
  error: string | null;
  /** Journal mode: journal files found in the directory (and its machine-ID subdirectories). */
  journalFiles: number | null;
  /** File mode: bytes read from the end of the file. */
  bytesRead: number | null;
  /** File mode: the file was larger than what doctor reads, so older lines were not looked at. */
  truncated: boolean;
  kmsg: KmsgReport | null;
}

export type ApiFailure = 'not_configured' | 'unreachable' | 'unauthorized';

export interface Permission {
  resource: string;
  verb: string;
  /** null when the access review itself failed. */
  allowed: boolean | null;
  error: string | null;
}

export interface ApiReport {
  /** The API server URL the agent would use; null when there is none. */
  server: string | null;
  credentials: 'kubeconfig' | 'in-cluster';
  reachable: boolean;
  failure: ApiFailure | null;
  error: string | null;
  /** The server's gitVersion, when it told. */
  version: string | null;
  /** Empty when the API could not be reached. */
  permissions: Permission[];
}

/** A drop address and what the agent's index makes of it. */
export interface ResolvedAddress extends AddressCount {
  /** namespace/name of the Running pod using it. */
  pod: string | null;
  hostNetwork: boolean;
  /** The node owning it, when no pod does. */
  node: string | null;
  /**
   * How the agent knows it: `watch`, from its pod watch (every pod, or with POD_WATCH_SCOPE=node this node's)
   * or its node watch; `lookup`, with POD_WATCH_SCOPE=node, by asking the API server for the pod with that
   * status.podIP when a drop names it.
   */
  via: 'watch' | 'lookup';
  /** Why the lookup failed (the agent would retry it); null otherwise. */
  lookupError: string | null;
}

export interface PodsReport {
  /** Running pods the agent would index; null when they could not be listed. */
  running: number | null;
  /** POD_WATCH_SCOPE=node: those of them not on the host network, the pods that get Events; else null. */
  local: number | null;
  error: string | null;
  /** HTTP status of the failed pod list, when it got one. */
  errorStatus: number | null;
  nodes: number | null;
  nodesError: string | null;
  addresses: ResolvedAddress[];
}

/** Calico's Felix and the prefix it renders into its Log rules (felix-check.ts). */
export interface FelixReport {
  /** group/version the FelixConfiguration was read from; null when it was not read. */
  api: string | null;
  /** Felix's logPrefix as configured (its default when unset); null when it was not read. */
  logPrefix: string | null;
  /** Why it was not read: no permission, no Calico, or the error. */
  reason: 'forbidden' | 'not_found' | 'error' | null;
  error: string | null;
}

/** POD_WATCH_SCOPE, and the node whose pods are watched (null when every pod is). */
export interface WatchReport {
  scope: PodWatchScope;
  nodeName: string | null;
}

/** The running agent's pod lookups, from its own metrics endpoint (lookups-check.ts). */
export interface LookupsReport {
  /** The endpoint read; null when there was nothing to read (POD_WATCH_SCOPE=cluster, METRICS_SERVER_PORT=0). */
  url: string | null;
  /** Why the figures are missing, one sentence. */
  error: string | null;
  /** kube_iptables_tailer_pod_lookups_total by outcome since the agent started; null when not read. */
  outcomes: Record<LookupOutcome, number> | null;
  /** hit / (hit + miss + found + not_found), from 0 to 1; null when not read or nothing was answered. */
  hitRate: number | null;
  /** kube_iptables_tailer_pod_lookup_cache_entries; null when not read. */
  cacheEntries: number | null;
}

export type Status = 'ok' | 'warn' | 'fail' | 'skip';

export type CheckId =
  | 'source'
  | 'window'
  | 'prefix'
  | 'parse'
  | 'api'
  | 'permissions'
  | 'pods'
  | 'addresses'
  | 'lookups'
  | 'felix';

export interface Check {
  id: CheckId;
  status: Status;
  summary: string;
  /** What to do, one sentence; set for every warn and fail. */
  advice: string | null;
  /** Supporting lines (failure examples, addresses), for the text output. */
  details: string[];
}

export interface DoctorReport {
  /** 1 when something blocks events, else 0 (warnings allowed). */
  exitCode: 0 | 1;
  source: SourceReport;
  api: ApiReport;
  /** null when the API could not be used. */
  pods: PodsReport | null;
  /** null when the API could not be used. */
  felix: FelixReport | null;
  watch: WatchReport;
  lookups: LookupsReport;
  checks: Check[];
}
