import { LRUCache } from 'lru-cache';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * Series of packet_drops_count kept at most. Its labels name peers, and a peer outside the cluster is
 * named by its DNS name or address: on a node that faces the internet, new ones come without end.
 */
export const DROP_SERIES_LIMIT = 5_000;

/**
 * Every metric the agent exports. One instance per process (or per test), passed to each stage, so a
 * test can read exactly what its own pipeline counted.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Compatible with box/kube-iptables-tailer: one count per drop posted, by peer names. Use countDrop. */
  readonly packetDrops = new Counter({
    name: 'packet_drops_count',
    help: `Packet drops posted as events, by source and destination name (the ${DROP_SERIES_LIMIT} pairs counted most recently)`,
    labelNames: ['src', 'dst'] as const,
    registers: [this.registry],
  });
  readonly dropSeriesEvicted = this.counter(
    'drop_series_evicted_total',
    'packet_drops_count series removed to keep their number bounded, least recently counted first',
  );
  readonly linesRead = this.counter(
    'lines_read_total',
    'Log lines (or journal entries) read from the source',
  );
  readonly linesParsed = this.counter(
    'lines_parsed_total',
    'Lines that carried the prefix and parsed into a drop',
  );
  readonly linesInvalid = new Counter({
    name: 'kube_iptables_tailer_lines_invalid_total',
    help: 'Lines that carried the prefix but could not be parsed, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly dropsExpired = this.counter(
    'drops_expired_total',
    'Drops older than PACKET_DROP_EXPIRATION_MINUTES',
  );
  readonly dropsSuppressed = this.counter(
    'drops_suppressed_total',
    'Drops within REPEATED_EVENTS_INTERVAL_MINUTES of the same posted drop',
  );
  readonly dropsUnmatched = this.counter(
    'drops_unmatched_total',
    'Drops where neither address is a Running pod',
  );
  readonly dropsHeld = this.counter(
    'drops_held_total',
    'Drops with an unknown address that waited for the pod index to catch up (its watch reconnecting)',
  );
  readonly dropsPostedLate = this.counter(
    'drops_posted_late_total',
    "Drop sides posted when their pod's Running status reached the pod index after the drop",
  );
  readonly eventsCreated = this.counter('events_created_total', 'Events created in the API');
  readonly eventsPatched = this.counter(
    'events_patched_total',
    'Existing Events whose count was incremented',
  );
  readonly eventsFailed = new Counter({
    name: 'kube_iptables_tailer_events_failed_total',
    help: 'Event writes that failed, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly eventsDropped = new Counter({
    name: 'kube_iptables_tailer_events_dropped_total',
    help: 'Event writes given up, by reason (expired, shutdown, already_counted, queue_full, forbidden, invalid, ...)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = this.gauge('queue_depth', 'Events waiting to be written');
  readonly podsIndexed = this.gauge('pods_indexed', 'Running pods in the pod index');
  readonly sourceLagSeconds = this.gauge(
    'source_lag_seconds',
    'Age of the newest log line read, by its own timestamp',
  );
  readonly apiWatch = new Counter({
    name: 'kube_iptables_tailer_api_watch_total',
    help: 'Pod and node list-watch activity: lists, relists, watches, reconnects, events, by resource',
    labelNames: ['resource', 'counter'] as const,
    registers: [this.registry],
  });
  readonly sourceErrors = new Counter({
    name: 'kube_iptables_tailer_source_errors_total',
    help: 'Problems reading the log source, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** The packet_drops_count series in the registry, by their label pair; the least recently counted goes first. */
  private readonly dropSeries: LRUCache<string, { src: string; dst: string }>;

  constructor(options: { defaultMetrics?: boolean; dropSeriesLimit?: number } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.dropSeries = new LRUCache({
      max: options.dropSeriesLimit ?? DROP_SERIES_LIMIT,
      dispose: (labels, _key, reason) => {
        if (reason !== 'evict') return;
        this.packetDrops.remove(labels);
        this.dropSeriesEvicted.inc();
      },
    });
  }

  /** One drop posted between the peers so named. */
  countDrop(src: string, dst: string): void {
    const key = JSON.stringify([src, dst]);
    if (this.dropSeries.get(key) === undefined) this.dropSeries.set(key, { src, dst });
    this.packetDrops.inc({ src, dst });
  }

  private counter(name: string, help: string): Counter {
    return new Counter({ name: `kube_iptables_tailer_${name}`, help, registers: [this.registry] });
  }

  private gauge(name: string, help: string): Gauge {
    return new Gauge({ name: `kube_iptables_tailer_${name}`, help, registers: [this.registry] });
  }
}
