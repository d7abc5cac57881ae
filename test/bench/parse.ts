/**
 * Throughput of the whole `parse --stats` process over a generated 1,000,000-line kernel log: mostly
 * Calico drop lines (TCP, UDP, ICMP with a quoted packet, IPv6) in three syslog timestamp styles, with
 * unrelated kernel lines and near-miss prefixes among them. Prints one JSON line with the median of
 * three runs of the whole process (node startup included, as a user would see it), for the compiled
 * agent that the image runs (`dist/cli.js`, built first) and, beside it, for `npm run cli`, which
 * strips the TypeScript sources at every start, in the main thread and in each worker.
 *
 *   node test/bench/parse.ts [LINES]
 */

import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildDist } from './measure.ts';

const TARGET_LINES_PER_SECOND = 1_000_000;
const RUNS = 3;
const repo = new URL('../..', import.meta.url).pathname;

/** Deterministic, so every run of the bench measures the same file. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const next = random(42);
const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
const int = (max: number): number => Math.floor(next() * max);

const hosts = ['gke-cluster-k8s-default-pool-d4371b02-9s00', 'node-a1', 'ip-10-0-12-7.ec2.internal'];
const pods4 = Array.from({ length: 200 }, (_, i) => `10.4.${i >> 4}.${(i * 7) % 250}`);
const pods6 = Array.from(
  { length: 50 },
  (_, i) => `fd00:0010:0244:0000:0000:0000:0000:${(i + 1).toString(16).padStart(4, '0')}`,
);
const interfaces = Array.from({ length: 50 }, (_, i) => `cali${(0x6e7bb88b982 + i * 7919).toString(16)}`);
const mac = 'ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00';

function tcp4(): string {
  return `IN=${pick(interfaces)} OUT=eth0 MAC=${mac} SRC=${pick(pods4)} DST=${pick(pods4)} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${int(65536)} DF PROTO=TCP SPT=${1024 + int(60000)} DPT=${pick([80, 443, 8080, 12865])} WINDOW=42600 RES=0x00 SYN URGP=0 `;
}

function udp4(): string {
  return `IN=${pick(interfaces)} OUT=eth0 MAC=${mac} SRC=${pick(pods4)} DST=${pick(pods4)} LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=${int(65536)} DF PROTO=UDP SPT=${1024 + int(60000)} DPT=53 LEN=56 `;
}

function icmp4(): string {
  const src = pick(pods4);
  const dst = pick(pods4);
  if (next() < 0.5) {
    return `IN=${pick(interfaces)} OUT= MAC=${mac} SRC=${src} DST=${dst} LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=${int(65536)} DF PROTO=ICMP TYPE=8 CODE=0 ID=${int(65536)} SEQ=${int(100)} `;
  }
  return `IN=eth0 OUT=${pick(interfaces)} SRC=${src} DST=${dst} LEN=88 TOS=0x00 PREC=0xC0 TTL=64 ID=${int(65536)} PROTO=ICMP TYPE=3 CODE=3 [SRC=${dst} DST=${src} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=${int(65536)} DF PROTO=UDP SPT=5000 DPT=53 LEN=40 ] `;
}

function ip6(): string {
  const head = `IN=${pick(interfaces)} OUT=eth0 MAC=${mac.replace('08:00', '86:dd')} SRC=${pick(pods6)} DST=${pick(pods6)}`;
  if (next() < 0.7) {
    return `${head} LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=${int(1 << 20)} PROTO=TCP SPT=${1024 + int(60000)} DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0 `;
  }
  return `${head} LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=${int(1 << 20)} PROTO=ICMPv6 TYPE=128 CODE=0 ID=${int(65536)} SEQ=1 `;
}

const unrelated = [
  'IPv6: ADDRCONF(NETDEV_CHANGE): cali3f2b1c0d9e8: link becomes ready',
  'audit: type=1400 audit(1712349702.123:456): apparmor="DENIED" operation="open" profile="cri-containerd"',
  'eth0: renamed from tmp4c1d2e',
  'xcalico-packet: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 PROTO=TCP SPT=1 DPT=2',
  'nf_conntrack: default automatic helper assignment has been turned off for security reasons',
];

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The three styles syslog daemons and journalctl write most. */
function stamp(ms: number): string {
  const d = new Date(ms);
  const clock = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const micros = pad(d.getUTCMilliseconds() * 1000 + int(1000), 6);
  const style = next();
  if (style < 0.4) return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${clock}`;
  if (style < 0.8) return `${date}T${clock}.${micros}+00:00`;
  return `${date}T${clock}.${micros}+0000`;
}

function line(ms: number): string {
  const head = `${stamp(ms)} ${pick(hosts)} kernel:`;
  const kind = next();
  if (kind < 0.15) return `${head} [${((ms / 1000) % 1e6).toFixed(6)}] ${pick(unrelated)}`;
  const uptime = next() < 0.5 ? ` [${((ms / 1000) % 1e6).toFixed(6)}]` : '';
  const fields = kind < 0.6 ? tcp4() : kind < 0.72 ? udp4() : kind < 0.84 ? icmp4() : ip6();
  return `${head}${uptime} calico-packet: ${fields}`;
}

async function generate(path: string, lines: number): Promise<void> {
  const out = createWriteStream(path);
  const start = Date.now() - 3_600_000;
  const batch: string[] = [];
  for (let i = 0; i < lines; i++) {
    batch.push(line(start + i * 3));
    if (batch.length === 10_000 || i === lines - 1) {
      if (!out.write(`${batch.join('\n')}\n`)) await once(out, 'drain');
      batch.length = 0;
    }
  }
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

async function measure(entry: string, file: string): Promise<{ lines: number; seconds: number }> {
  const started = performance.now();
  const { stdout } = await promisify(execFile)(process.execPath, [entry, 'parse', '--stats', file], {
    cwd: repo,
    env: { ...process.env, IPTABLES_LOG_PREFIX: 'calico-packet' },
    maxBuffer: 1 << 20,
  });
  const seconds = (performance.now() - started) / 1000;
  const summary = JSON.parse(stdout) as { lines: number };
  return { lines: summary.lines, seconds };
}

/** The median of RUNS whole-process runs of one entry point. */
async function medianRun(
  entry: string,
  file: string,
): Promise<{ lines: number; seconds: number; runs: number[] }> {
  const runs: { lines: number; seconds: number }[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await measure(entry, file));
  const median = [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor(RUNS / 2)]!;
  return { ...median, runs: runs.map((run) => Math.round(run.seconds * 1000) / 1000) };
}

const lineCount = Number(process.argv[2] ?? 1_000_000);
const dir = await mkdtemp(join(tmpdir(), 'bench-parse-'));
try {
  const file = join(dir, 'kern.log');
  await generate(file, lineCount);
  const built = await medianRun(await buildDist(), file);
  const sources = await medianRun('agent/cli.ts', file);
  const linesPerSecond = Math.round(built.lines / built.seconds);
  process.stdout.write(
    `${JSON.stringify({
      bench: 'parse',
      statistic: 'median',
      entry: 'dist/cli.js',
      lines: built.lines,
      seconds: Math.round(built.seconds * 1000) / 1000,
      linesPerSecond,
      target: TARGET_LINES_PER_SECOND,
      met: linesPerSecond >= TARGET_LINES_PER_SECOND,
      runSeconds: built.runs,
      sourcesEntry: 'agent/cli.ts',
      sourcesLinesPerSecond: Math.round(sources.lines / sources.seconds),
      sourcesRunSeconds: sources.runs,
      // Other work on a two-core machine moves this figure a lot: the load tells how quiet it was.
      loadAverage: Math.round(loadavg()[0]! * 100) / 100,
    })}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
