import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { V1Pod } from '@kubernetes/client-node';
import { loadConfig, REPLAY_VARIABLES } from '../config.ts';
import { type BookedEvent, EventBook } from '../events/event-book.ts';
import { SideEvents } from '../events/sides.ts';
import { isRecord } from '../kube/objects.ts';
import { PodDirectory } from '../locator/pod-directory.ts';
import type { PodState } from '../locator/pod-index.ts';
import { podState } from '../locator/pod-ref.ts';
import { Metrics } from '../metrics.ts';
import { createParser } from '../parser/parse.ts';
import { Pipeline } from '../pipeline.ts';
import { prefixProblem } from '../prefix-template.ts';
import { SyslogReader } from '../sources/syslog/record.ts';
import { parseCommandArgs, UsageError } from './args.ts';

/** A file the user named cannot be used: one line on stderr, exit 1. */
class InputError extends Error {
  override name = 'InputError';
}

const OUTPUTS = ['json', 'text'] as const;
type Output = (typeof OUTPUTS)[number];

/** The Pod objects of `kubectl get pods -A -o json` (a v1 List), or of a single `kubectl get pod -o json`. */
function podItems(document: unknown): unknown[] {
  if (isRecord(document) && Array.isArray(document.items)) return document.items;
  if (isRecord(document) && document.kind === 'Pod') return [document];
  throw new Error('expected the output of `kubectl get pods -A -o json`: an object with an "items" array');
}

async function loadPods(
  path: string,
  identifierLabel: string,
  warn: (line: string) => void,
  metrics: Metrics,
): Promise<PodDirectory> {
  let items: unknown[];
  try {
    items = podItems(JSON.parse(await readFile(path, 'utf8')));
  } catch (err) {
    throw new InputError(`cannot use pods file ${path}: ${(err as Error).message}`);
  }
  const states: PodState[] = [];
  items.forEach((item, index) => {
    const state = isRecord(item) ? podState(item as V1Pod, identifierLabel) : null;
    if (state === null) warn(`${path}: items[${index}] is not a pod with a metadata.name; skipped`);
    else states.push(state);
  });
  const directory = new PodDirectory(metrics.podIpConflicts);
  directory.pods.replace(states);
  return directory;
}

/** Lines of a file, or of stdin for '-'; any read failure becomes an InputError naming the file. */
async function* readLines(path: string): AsyncGenerator<string> {
  try {
    const input = path === '-' ? process.stdin : (await open(path)).createReadStream();
    yield* createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  } catch (err) {
    throw new InputError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** kubectl's age style ("45s", "3m20s", "2h5m", "3d"), relative to the newest log time of the replay. */
export function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** A cell with its control characters escaped (`\n`, `\u001b`): a newline in a name must not start a row. */
function cellText(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped.
  return value.replace(/[\x00-\x1f\x7f]/g, (c) =>
    c === '\x7f' ? '\\u007f' : JSON.stringify(c).slice(1, -1),
  );
}

/** Columns padded to their widest cell, three spaces apart, like kubectl. */
function table(cells: readonly (readonly string[])[]): string {
  const rows = cells.map((row) => row.map(cellText));
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('   ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

function format(events: readonly BookedEvent[], output: Output, now: number): string {
  if (output === 'json') {
    // core/v1 Event plus a top-level namespace, the field the replay contract names, the message as
    // events.k8s.io/v1 calls it, and the policy a template prefix named.
    return events
      .map(
        (event) =>
          `${JSON.stringify({ namespace: event.metadata.namespace, ...event, note: event.message })}\n`,
      )
      .join('');
  }
  const header = ['LAST SEEN', 'COUNT', 'NAMESPACE', 'OBJECT', 'TYPE', 'REASON', 'MESSAGE'];
  const rows = events.map((event) => [
    age(now - Date.parse(event.lastTimestamp)),
    String(event.count),
    event.metadata.namespace,
    `pod/${event.involvedObject.name}`,
    event.type,
    event.reason,
    event.message,
  ]);
  return table([header, ...rows]);
}

/**
 * replay --pods PODS.json [--prefix P] [--output json|text] [FILE...]: the whole pipeline offline. "now" is
 * the newest log time seen so far, so expiry and repeat intervals follow the log's clock; no reverse DNS.
 */
export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    pods: { type: 'string' },
    prefix: { type: 'string' },
    output: { type: 'string', default: 'json' },
  });
  if (values.pods === undefined)
    throw new UsageError('replay needs --pods PODS.json (kubectl get pods -A -o json)');
  const output = values.output as Output;
  if (!OUTPUTS.includes(output)) throw new UsageError(`--output must be one of ${OUTPUTS.join(', ')}`);
  const config = loadConfig(process.env, { uses: REPLAY_VARIABLES });
  const prefix = values.prefix ?? config.logPrefix;
  const expected = prefixProblem(prefix);
  if (expected !== null) throw new UsageError(`--prefix: expected ${expected}`);
  const warn = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  try {
    const metrics = new Metrics();
    const locator = await loadPods(values.pods, config.podIdentifierLabel, warn, metrics);
    const book = new EventBook(config);
    const sink = new SideEvents(book, config.repeatIntervalMs);
    const pipeline = new Pipeline({ config, locator, sink, metrics });
    const parse = createParser({ prefix });
    let now = Number.NEGATIVE_INFINITY;
    for (const path of positionals.length > 0 ? positionals : ['-']) {
      let lineNumber = 0;
      const syslog = new SyslogReader({ prefix, timeLayout: config.timeLayout, now: Date.now });
      for await (const text of readLines(path)) {
        lineNumber++;
        const result = parse(syslog.record(text));
        if (result.kind === 'invalid') warn(`${path}:${lineNumber}: ${result.reason}: ${result.detail}`);
        if (result.kind !== 'drop') continue;
        now = Math.max(now, result.drop.time);
        pipeline.handle(result.drop, now);
      }
    }
    process.stdout.write(format(book.list(), output, now));
    return 0;
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    warn(`kube-iptables-tailer: ${err.message}`);
    return 1;
  }
}
