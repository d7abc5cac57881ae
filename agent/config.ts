/**
 * Agent configuration from environment variables. Names and defaults follow box/kube-iptables-tailer so
 * that users swap only the image; variables added by this implementation are marked "(new)" in the README.
 */

import { prefixProblem } from './prefix-template.ts';

export const POD_IDENTIFIERS = ['namespace', 'name', 'label', 'name_with_namespace'] as const;
export type PodIdentifier = (typeof POD_IDENTIFIERS)[number];

/** node: this node's pods by watch, other pods looked up by address (scales); cluster: every pod watched. */
export const POD_WATCH_SCOPES = ['node', 'cluster'] as const;
export type PodWatchScope = (typeof POD_WATCH_SCOPES)[number];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  logPrefix: string;
  /** JOURNAL_DIRECTORY, IPTABLES_LOG_PATH or KMSG_PATH; null unless exactly one is set (parse and replay need none). */
  source: SourceSetting | null;
  checkpointDirectory: string;
  podIdentifier: PodIdentifier;
  podIdentifierLabel: string;
  eventReason: string;
  eventSourceComponent: string;
  nodeName: string;
  metricsPort: number;
  expirationMs: number;
  repeatIntervalMs: number;
  watchIntervalMs: number;
  queueSize: number;
  /** User-given Go reference layout, tried before the built-in timestamp styles. */
  timeLayout: string | null;
  kubeApiServer: string | null;
  logLevel: LogLevel;
  /** Sustained Event writes per second to the API server (new). */
  eventRateLimit: number;
  /** Burst of Event writes allowed for a single pod (new). */
  eventBurstPerPod: number;
  /** Seconds to flush queued events after SIGTERM (new). */
  shutdownGraceMs: number;
  /** Reverse DNS for peers that are neither pods nor nodes (new). */
  reverseDns: boolean;
  /** Which pods the agent watches; the others are looked up on demand (new). */
  podWatchScope: PodWatchScope;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Go's reference layout of the original, kept as the documented default for compatibility. */
export const DEFAULT_TIME_LAYOUT = '2006-01-02T15:04:05.000000-07:00';

/** Plain decimal digits: Number() would also take 0x10, 1e3, 0b11, +80 and 80.0. */
const DECIMAL_INTEGER = /^[0-9]+$/;

/** A problem with one variable; `loadConfig` reports those of the variables its caller uses. */
interface Problem {
  variable: string;
  text: string;
}

class Reader {
  readonly problems: Problem[] = [];
  private readonly env: Env;
  constructor(env: Env) {
    this.env = env;
  }

  problem(variable: string, text: string): void {
    this.problems.push({ variable, text });
  }

  /** `name="value": expected ...`, the shape of every problem with a value. */
  invalid(name: string, expected: string): void {
    this.problem(name, `${name}=${JSON.stringify(this.env[name])}: expected ${expected}`);
  }

  string(name: string, fallback: string): string {
    const v = this.env[name];
    return v === undefined || v === '' ? fallback : v;
  }

  optional(name: string): string | null {
    const v = this.env[name];
    return v === undefined || v === '' ? null : v;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const text = raw.trim();
    const v = Number(text);
    if (!DECIMAL_INTEGER.test(text) || v < min || v > max) {
      this.invalid(name, `a decimal integer from ${min} to ${max}`);
      return fallback;
    }
    return v;
  }

  choice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const v = raw.trim().toLowerCase();
    if (!(choices as readonly string[]).includes(v)) {
      this.invalid(name, `one of ${choices.join(', ')}`);
      return fallback;
    }
    return v as T;
  }

  bool(name: string, fallback: boolean): boolean {
    return this.choice(name, ['true', 'false'], fallback ? 'true' : 'false') === 'true';
  }
}

/** The API refuses an Event whose reason is longer. */
const MAX_REASON_LENGTH = 128;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * An Event with an event time (every Event this agent writes) names its reporting controller by a qualified
 * name, `[prefix/]name`: the API refuses any other, so a bad value must stop the agent at start, not every write.
 */
function isQualifiedName(value: string): boolean {
  const slash = value.indexOf('/');
  if (slash < 0) return QUALIFIED_NAME.test(value);
  const prefix = value.slice(0, slash);
  return prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && QUALIFIED_NAME.test(value.slice(slash + 1));
}

/**
 * An absolute http(s) URL with a host and nothing after the path. Whether plain http is accepted depends on
 * the credentials (the client allows it only with insecure-skip-tls-verify): agent/kube/client.ts checks that.
 */
function isServerUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (
    (url.protocol === 'https:' || url.protocol === 'http:') &&
    url.hostname !== '' &&
    url.search === '' &&
    url.hash === ''
  );
}

/** Which log source the agent follows, from JOURNAL_DIRECTORY, IPTABLES_LOG_PATH or KMSG_PATH. */
export interface SourceSetting {
  kind: 'journal' | 'file' | 'kmsg';
  path: string;
}

/** Each source's variable, in the order problems name them. */
const SOURCE_VARIABLES = [
  ['journal', 'JOURNAL_DIRECTORY'],
  ['file', 'IPTABLES_LOG_PATH'],
  ['kmsg', 'KMSG_PATH'],
] as const;

const SOURCE_CHOICES =
  'JOURNAL_DIRECTORY=/var/log/journal for the systemd journal, IPTABLES_LOG_PATH=/var/log/kern.log for a syslog file, KMSG_PATH=/dev/kmsg for the kernel ring buffer';

/** "A", "A and B", "A, B and C". */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

function sourceOf(r: Reader, needed: boolean): SourceSetting | null {
  const set = SOURCE_VARIABLES.flatMap(([kind, variable]) => {
    const path = r.optional(variable);
    return path === null ? [] : [{ kind, variable, path }];
  });
  if (set.length === 1) return { kind: set[0]!.kind, path: set[0]!.path };
  if (needed) {
    const all = SOURCE_VARIABLES.map(([, variable]) => variable);
    const text =
      set.length === 0
        ? `none of ${listed(all)} is set: set exactly one (${SOURCE_CHOICES})`
        : `${listed(set.map((source) => source.variable))} are ${set.length === 2 ? 'both' : 'all'} set: set exactly one (${SOURCE_CHOICES})`;
    for (const variable of all) r.problem(variable, text);
  }
  return null;
}

/** What `parse` reads from the environment. */
export const PARSE_VARIABLES: readonly string[] = ['IPTABLES_LOG_PREFIX', 'PACKET_DROP_LOG_TIME_LAYOUT'];

/** What `replay` reads: parse's, and what naming, expiry, repeats and the Events take. */
export const REPLAY_VARIABLES: readonly string[] = [
  ...PARSE_VARIABLES,
  'POD_IDENTIFIER',
  'POD_IDENTIFIER_LABEL',
  'KUBE_EVENT_DISPLAY_REASON',
  'KUBE_EVENT_SOURCE_COMPONENT_NAME',
  'NODE_NAME',
  'PACKET_DROP_EXPIRATION_MINUTES',
  'REPEATED_EVENTS_INTERVAL_MINUTES',
];

export interface LoadOptions {
  /**
   * The variables the command reads (parse and replay ignore the DaemonSet's API and port settings): only
   * their problems are reported. The others keep their defaults when invalid; the caller must not read them.
   */
  uses?: readonly string[];
  /** Exactly one of JOURNAL_DIRECTORY, IPTABLES_LOG_PATH and KMSG_PATH must be set (run, doctor). */
  needsSource?: boolean;
  /** The command watches pods (run): POD_WATCH_SCOPE=node then needs NODE_NAME. */
  watchesPods?: boolean;
}

/** Reads and validates the variables; throws one ConfigError naming every invalid one. */
export function loadConfig(env: Env = process.env, options: LoadOptions = {}): Config {
  const { uses, needsSource = false, watchesPods = false } = options;
  const r = new Reader(env);
  const logPrefix = r.string('IPTABLES_LOG_PREFIX', 'calico-packet').trim();
  const prefixExpected = prefixProblem(logPrefix);
  if (prefixExpected !== null) r.invalid('IPTABLES_LOG_PREFIX', prefixExpected);
  const podIdentifier = r.choice('POD_IDENTIFIER', POD_IDENTIFIERS, 'namespace');
  const podIdentifierLabel = r.string('POD_IDENTIFIER_LABEL', '');
  if (podIdentifier === 'label' && podIdentifierLabel === '') {
    r.problem(
      'POD_IDENTIFIER',
      'POD_IDENTIFIER=label needs POD_IDENTIFIER_LABEL (the label key whose value names the pod)',
    );
  }
  const timeLayout = r.optional('PACKET_DROP_LOG_TIME_LAYOUT');
  if (timeLayout !== null && !/2006|06|Jan|01|02|_2|15|03|04|05/.test(timeLayout)) {
    r.invalid('PACKET_DROP_LOG_TIME_LAYOUT', `a Go reference-time layout such as ${DEFAULT_TIME_LAYOUT}`);
  }
  // The original fell back to its default for an empty reason too; an Event with a blank reason is useless.
  const eventReason = env.KUBE_EVENT_DISPLAY_REASON ?? 'PacketDrop';
  if (eventReason.trim() === '' || eventReason.length > MAX_REASON_LENGTH) {
    r.invalid(
      'KUBE_EVENT_DISPLAY_REASON',
      `a word such as PacketDrop, at most ${MAX_REASON_LENGTH} characters`,
    );
  }
  const eventSourceComponent = r.string('KUBE_EVENT_SOURCE_COMPONENT_NAME', 'kube-iptables-tailer');
  if (!isQualifiedName(eventSourceComponent)) {
    r.invalid(
      'KUBE_EVENT_SOURCE_COMPONENT_NAME',
      'a Kubernetes qualified name (letters, digits, -, _ and ., up to 63, optionally after a DNS prefix and /) such as kube-iptables-tailer',
    );
  }
  const kubeApiServer = r.optional('KUBE_API_SERVER');
  if (kubeApiServer !== null && !isServerUrl(kubeApiServer)) {
    r.invalid('KUBE_API_SERVER', 'the API server as an https:// URL, e.g. https://10.96.0.1:443');
  }
  const config: Config = {
    logPrefix,
    source: sourceOf(r, needsSource),
    checkpointDirectory: r.string('CHECKPOINT_DIRECTORY', '/var/lib/kube-iptables-tailer'),
    podIdentifier,
    podIdentifierLabel,
    eventReason,
    eventSourceComponent,
    nodeName: r.string('NODE_NAME', ''),
    metricsPort: r.int('METRICS_SERVER_PORT', 9090, 0, 65535),
    expirationMs: r.int('PACKET_DROP_EXPIRATION_MINUTES', 10, 1, 7 * 24 * 60) * 60_000,
    repeatIntervalMs: r.int('REPEATED_EVENTS_INTERVAL_MINUTES', 2, 0, 7 * 24 * 60) * 60_000,
    watchIntervalMs: r.int('WATCH_LOGS_INTERVAL_SECONDS', 5, 1, 3600) * 1000,
    queueSize: r.int('PACKET_DROP_CHANNEL_BUFFER_SIZE', 100, 1, 1_000_000),
    timeLayout,
    kubeApiServer,
    logLevel: r.choice('LOG_LEVEL', LOG_LEVELS, 'info'),
    eventRateLimit: r.int('EVENT_RATE_LIMIT_PER_SECOND', 20, 1, 10_000),
    eventBurstPerPod: r.int('EVENT_BURST_PER_POD', 5, 1, 1000),
    shutdownGraceMs: r.int('SHUTDOWN_GRACE_SECONDS', 10, 0, 600) * 1000,
    reverseDns: r.bool('REVERSE_DNS', true),
    podWatchScope: r.choice('POD_WATCH_SCOPE', POD_WATCH_SCOPES, 'node'),
  };
  if (watchesPods && config.podWatchScope === 'node' && config.nodeName === '') {
    r.problem(
      'NODE_NAME',
      "NODE_NAME is not set: POD_WATCH_SCOPE=node (the default) watches this node's pods; set NODE_NAME to the node's name (fieldRef spec.nodeName), or POD_WATCH_SCOPE=cluster",
    );
  }
  const problems = r.problems
    .filter((problem) => uses === undefined || uses.includes(problem.variable))
    .map((problem) => problem.text);
  // Once for a problem filed under two variables (both source variables, for instance).
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return config;
}

/** The live agent and doctor need exactly one log source; parse and replay take files instead. */
export function requireOneSource(config: Config): SourceSetting {
  if (config.source === null) {
    throw new ConfigError([`set exactly one of ${listed(SOURCE_VARIABLES.map(([, variable]) => variable))}`]);
  }
  return config.source;
}
