import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import { type Config, ConfigError, loadConfig, requireOneSource } from '../config.ts';
import { type CombinerState, isCombinerState } from '../events/combine.ts';
import { SideEvents } from '../events/sides.ts';
import { EventWriter } from '../events/writer.ts';
import { loadKubeConfig } from '../kube/client.ts';
import type { ListWatch } from '../kube/list-watch.ts';
import { createNodeWatch } from '../locator/node-watch.ts';
import { PodDirectory } from '../locator/pod-directory.ts';
import { PodLookup } from '../locator/pod-lookup.ts';
import { createPodWatch, podLister } from '../locator/pod-watch.ts';
import { ReverseDns } from '../locator/reverse-dns.ts';
import { createLogger, type Logger } from '../log.ts';
import { Metrics } from '../metrics.ts';
import { createParser } from '../parser/parse.ts';
import { Pipeline } from '../pipeline.ts';
import { boundPort, startServer } from '../server.ts';
import { CheckpointDirectory } from '../sources/checkpoint.ts';
import { FileSource } from '../sources/file.ts';
import { JournalSource } from '../sources/journal.ts';
import { KmsgSource } from '../sources/kmsg.ts';
import type { HandledBatch, LogSource } from '../sources/source.ts';
import { StallWatch } from '../sources/stall.ts';
import { SyslogReader } from '../sources/syslog/record.ts';
import type { LogRecord } from '../types.ts';
import { UsageError } from './args.ts';

const HELD_DROPS_POLL_MS = 200;
/**
 * Past SHUTDOWN_GRACE_SECONDS plus this, the process exits whatever still runs (a call to an API server
 * that does not answer, a watch being closed): the kubelet's own grace period must never be reached.
 */
const EXIT_MARGIN_MS = 700;
const COMBINING_FILE = 'combining.json';
/** How often the source's input is looked at beside the reader, for the stall gauge and readiness. */
const PROGRESS_LOOK_MS = 10_000;
/** Unread input with nothing read for this long (or two file poll intervals, if longer) is a stall. */
const STALL_AFTER_MS = 60_000;

type Env = Readonly<Record<string, string | undefined>>;

/** The variables and the credentials, with every problem of both in one ConfigError. */
function loadSettings(env: Env): { config: Config; kubeConfig: KubeConfig } {
  const problems: string[] = [];
  const attempt = <T>(load: () => T): T | null => {
    try {
      return load();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return null;
    }
  };
  const config = attempt(() => loadConfig(env, { needsSource: true, watchesPods: true }));
  // The credentials depend on KUBE_API_SERVER: with the variables invalid, they are checked only when it is unset.
  const serverUnset = (env.KUBE_API_SERVER ?? '') === '';
  const kubeConfig =
    config !== null || serverUnset
      ? attempt(() => loadKubeConfig({ kubeApiServer: config?.kubeApiServer ?? null }, env))
      : null;
  if (config === null || kubeConfig === null) throw new ConfigError(problems);
  return { config, kubeConfig };
}

function createSource(
  config: Config,
  checkpoints: CheckpointDirectory,
  log: Logger,
  metrics: Metrics,
): LogSource {
  const source = requireOneSource(config);
  const common = { checkpoints, log, metrics };
  switch (source.kind) {
    case 'journal':
      return new JournalSource({ ...common, directory: source.path, expirationMs: config.expirationMs });
    case 'file':
      return new FileSource({
        ...common,
        path: source.path,
        pollIntervalMs: config.watchIntervalMs,
        syslog: new SyslogReader({ prefix: config.logPrefix, timeLayout: config.timeLayout, now: Date.now }),
      });
    case 'kmsg':
      // The kernel's records name no host: the node's, as journald's _HOSTNAME would (in a pod, the
      // hostname is the pod's unless NODE_NAME gives the node's).
      return new KmsgSource({
        ...common,
        path: source.path,
        expirationMs: config.expirationMs,
        host: config.nodeName !== '' ? config.nodeName : hostname(),
      });
  }
}

/** The DaemonSet agent: log source → parser → pipeline → event writer, with metrics and health beside it. */
export async function main(argv: string[]): Promise<number> {
  if (argv.length > 0)
    throw new UsageError('run takes no arguments: it is configured by environment variables');
  const { config, kubeConfig } = loadSettings(process.env);
  const log = createLogger(config.logLevel);
  const metrics = new Metrics({ defaultMetrics: true });
  const checkpoints = new CheckpointDirectory(config.checkpointDirectory, log);
  const source = createSource(config, checkpoints, log, metrics);

  const directory = new PodDirectory(metrics.podIpConflicts);
  const counted = (resource: string) => ({
    logger: log,
    onCount: (counter: string) => metrics.apiWatch.inc({ resource, counter }),
  });
  const nodeScoped = config.podWatchScope === 'node';
  const podWatch = createPodWatch({
    kubeConfig,
    sink: directory.pods,
    labelKey: config.podIdentifierLabel,
    ...(nodeScoped ? { nodeName: config.nodeName } : {}),
    ...counted('pods'),
  });
  // Node-scoped, the pods of other nodes are found by address when a drop names one.
  const lookup = nodeScoped
    ? new PodLookup({
        list: podLister(kubeConfig),
        sink: directory.remote,
        labelKey: config.podIdentifierLabel,
        clock: () => performance.now(),
        logger: log,
        onOutcome: (outcome) => metrics.podLookups.inc({ outcome }),
      })
    : undefined;
  const watches: ListWatch<unknown>[] = [
    podWatch,
    createNodeWatch({ kubeConfig, sink: directory.nodes, ...counted('nodes') }),
  ];
  const writer = new EventWriter({ kubeConfig, config, metrics, log });
  const combining = checkpoints.checkpoint<CombinerState>(COMBINING_FILE);
  const saved = await combining.load(isCombinerState);
  const sides = new SideEvents(writer, config.repeatIntervalMs, saved ?? undefined);
  const pipeline = new Pipeline({
    config,
    locator: directory,
    sink: sides,
    metrics,
    freshness: podWatch,
    ...(lookup === undefined ? {} : { lookup }),
    ...(config.reverseDns ? { dns: new ReverseDns() } : {}),
  });
  // A pod's first drops may come before its Running status: their sides waited, and are posted now.
  directory.onRunning((pod) => pipeline.podRunning(pod, Date.now()));
  const parse = createParser({ prefix: config.logPrefix });

  /** The handler holds a batch: waiting for the writer's room is back-pressure, not a stall. */
  let busy = false;
  const stallAfterMs = Math.max(STALL_AFTER_MS, 2 * config.watchIntervalMs);
  const stall = new StallWatch(stallAfterMs);
  const server: Server = await startServer(config.metricsPort, metrics, {
    live: () => true,
    notReady: () => {
      const parts: string[] = [];
      if (!watches.every((watch) => watch.synced()))
        parts.push('pod index: not synced with the API server yet');
      const problem = source.problem();
      if (problem !== null) parts.push(`source: ${problem}`);
      if (stall.stalled(performance.now())) {
        parts.push(`source: the input has grown without being read for ${stallAfterMs / 1000} s or more`);
      }
      return parts;
    },
  });
  log.info(
    {
      source: requireOneSource(config),
      prefix: config.logPrefix,
      port: boundPort(server),
      podWatchScope: config.podWatchScope,
    },
    'starting',
  );

  for (const watch of watches) watch.start();
  const gauges = setInterval(() => {
    metrics.podsIndexed.set(directory.size);
    lookup?.purge();
    metrics.podLookupCache.set(lookup?.size ?? 0);
  }, 1000);
  // Held drops leave soon after the pod watch has caught up, even when no new line arrives to carry them.
  const releases = setInterval(() => pipeline.release(Date.now()), HELD_DROPS_POLL_MS);
  const stopping = new AbortController();
  // When the grace period ends: from the signal, or from now if reading ended by itself.
  let stopAt: number | undefined;
  const shutdown = (signal: string) => {
    if (stopping.signal.aborted) return;
    log.info({ signal }, 'stopping');
    stopAt = performance.now() + config.shutdownGraceMs;
    setTimeout(() => {
      log.warn({ graceSeconds: config.shutdownGraceMs / 1000 }, 'shutdown grace period over; exiting now');
      process.exit();
    }, config.shutdownGraceMs + EXIT_MARGIN_MS).unref();
    stopping.abort();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  try {
    // Drops read before the first full list could not be attributed to pods, so reading waits for it.
    await Promise.all(watches.map((watch) => watch.waitForSync(stopping.signal)));
  } catch {
    // aborted by a signal before the first sync: nothing was read, nothing to flush
  }

  const handle = async (records: readonly LogRecord[]): Promise<HandledBatch> => {
    busy = true;
    try {
      return await handleRecords(records);
    } finally {
      busy = false;
    }
  };
  const handleRecords = async (records: readonly LogRecord[]): Promise<HandledBatch> => {
    for (const record of records) {
      const result = parse(record);
      if (result.kind === 'skip') continue;
      if (result.kind === 'invalid') {
        metrics.linesInvalid.inc({ reason: result.reason });
        log.debug({ reason: result.reason, detail: result.detail }, 'invalid packet drop line');
        continue;
      }
      metrics.linesParsed.inc();
      const now = Date.now();
      metrics.sourceLagSeconds.set(Math.max(0, (now - result.drop.time) / 1000));
      pipeline.handle(result.drop, now);
    }
    const settled = writer.settled();
    await writer.waitForRoom(stopping.signal);
    return { settled };
  };

  let looking = false;
  const looks = setInterval(() => {
    if (looking) return;
    looking = true;
    void source
      .progress()
      .then((progress) => {
        const now = performance.now();
        stall.observe(progress, busy, now);
        metrics.sourceStalledSeconds.set(stall.stalledMs(now) / 1000);
      })
      .finally(() => {
        looking = false;
      });
  }, PROGRESS_LOOK_MS);
  if (!stopping.signal.aborted) {
    const run = source.run(handle);
    stopping.signal.addEventListener('abort', () => void source.stop(), { once: true });
    await run;
  }
  clearInterval(looks);
  clearInterval(releases);
  pipeline.release(Date.now(), true);
  lookup?.stop();
  stopAt ??= performance.now() + config.shutdownGraceMs;
  await writer.flush(stopAt - performance.now());
  // Again, now that the flush settled what it wrote: the checkpoint stops at the first line not written.
  await source.stop();
  // The lines after it are read again; they must go to the Events they went to before.
  await combining.save(sides.combining());
  clearInterval(gauges);
  await Promise.all(watches.map((watch) => watch.stop()));
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  log.info('stopped');
  return 0;
}
