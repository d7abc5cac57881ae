/**
 * Agent configuration from environment variables. Names and defaults follow box/kube-iptables-tailer so
 * that users swap only the image; variables added by this implementation are marked "(new)" in the README.
 */

export const POD_IDENTIFIERS = ['namespace', 'name', 'label', 'name_with_namespace'] as const;
export type PodIdentifier = (typeof POD_IDENTIFIERS)[number];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  logPrefix: string;
  journalDirectory: string | null;
  logPath: string | null;
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

class Reader {
  readonly problems: string[] = [];
  private readonly env: Env;
  constructor(env: Env) {
    this.env = env;
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
    const v = Number(raw.trim());
    if (!Number.isInteger(v) || v < min || v > max) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return v;
  }

  choice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const v = raw.trim().toLowerCase();
    if (!(choices as readonly string[]).includes(v)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected one of ${choices.join(', ')}`);
      return fallback;
    }
    return v as T;
  }

  bool(name: string, fallback: boolean): boolean {
    return this.choice(name, ['true', 'false'], fallback ? 'true' : 'false') === 'true';
  }
}

/** Reads and validates every variable; throws one ConfigError naming all invalid ones. */
export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const logPrefix = r.string('IPTABLES_LOG_PREFIX', 'calico-packet').trim();
  if (logPrefix.replace(/:+$/, '') === '') {
    r.problems.push(
      `IPTABLES_LOG_PREFIX=${JSON.stringify(env.IPTABLES_LOG_PREFIX)}: expected the iptables --log-prefix text, e.g. calico-packet`,
    );
  }
  const podIdentifier = r.choice('POD_IDENTIFIER', POD_IDENTIFIERS, 'namespace');
  const podIdentifierLabel = r.string('POD_IDENTIFIER_LABEL', '');
  if (podIdentifier === 'label' && podIdentifierLabel === '') {
    r.problems.push(
      'POD_IDENTIFIER=label needs POD_IDENTIFIER_LABEL (the label key whose value names the pod)',
    );
  }
  const timeLayout = r.optional('PACKET_DROP_LOG_TIME_LAYOUT');
  if (timeLayout !== null && !/2006|06|Jan|01|02|_2|15|03|04|05/.test(timeLayout)) {
    r.problems.push(
      `PACKET_DROP_LOG_TIME_LAYOUT=${JSON.stringify(timeLayout)}: expected a Go reference-time layout such as ${DEFAULT_TIME_LAYOUT}`,
    );
  }
  const config: Config = {
    logPrefix,
    journalDirectory: r.optional('JOURNAL_DIRECTORY'),
    logPath: r.optional('IPTABLES_LOG_PATH'),
    checkpointDirectory: r.string('CHECKPOINT_DIRECTORY', '/var/lib/kube-iptables-tailer'),
    podIdentifier,
    podIdentifierLabel,
    eventReason: r.string('KUBE_EVENT_DISPLAY_REASON', 'PacketDrop'),
    eventSourceComponent: r.string('KUBE_EVENT_SOURCE_COMPONENT_NAME', 'kube-iptables-tailer'),
    nodeName: r.string('NODE_NAME', ''),
    metricsPort: r.int('METRICS_SERVER_PORT', 9090, 0, 65535),
    expirationMs: r.int('PACKET_DROP_EXPIRATION_MINUTES', 10, 1, 7 * 24 * 60) * 60_000,
    repeatIntervalMs: r.int('REPEATED_EVENTS_INTERVAL_MINUTES', 2, 0, 7 * 24 * 60) * 60_000,
    watchIntervalMs: r.int('WATCH_LOGS_INTERVAL_SECONDS', 5, 1, 3600) * 1000,
    queueSize: r.int('PACKET_DROP_CHANNEL_BUFFER_SIZE', 100, 1, 1_000_000),
    timeLayout,
    kubeApiServer: r.optional('KUBE_API_SERVER'),
    logLevel: r.choice('LOG_LEVEL', LOG_LEVELS, 'info'),
    eventRateLimit: r.int('EVENT_RATE_LIMIT_PER_SECOND', 20, 1, 10_000),
    eventBurstPerPod: r.int('EVENT_BURST_PER_POD', 5, 1, 1000),
    shutdownGraceMs: r.int('SHUTDOWN_GRACE_SECONDS', 10, 0, 600) * 1000,
    reverseDns: r.bool('REVERSE_DNS', true),
  };
  if (config.kubeApiServer !== null && !/^https?:\/\//.test(config.kubeApiServer)) {
    r.problems.push(`KUBE_API_SERVER=${JSON.stringify(config.kubeApiServer)}: expected an http(s):// URL`);
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** The live agent and doctor need exactly one log source; parse and replay take files instead. */
export function requireOneSource(config: Config): { kind: 'journal' | 'file'; path: string } {
  if (config.journalDirectory !== null && config.logPath !== null) {
    throw new ConfigError([
      'JOURNAL_DIRECTORY and IPTABLES_LOG_PATH are both set: set exactly one (journal for systemd hosts, path for kern.log-style files)',
    ]);
  }
  if (config.journalDirectory !== null) return { kind: 'journal', path: config.journalDirectory };
  if (config.logPath !== null) return { kind: 'file', path: config.logPath };
  throw new ConfigError([
    'neither JOURNAL_DIRECTORY nor IPTABLES_LOG_PATH is set: set exactly one (e.g. JOURNAL_DIRECTORY=/var/log/journal)',
  ]);
}
