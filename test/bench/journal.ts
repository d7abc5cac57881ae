/**
 * Journal ingest throughput: builds a real 200,000-entry journal (kernel-transport Calico drop lines
 * among other kernel messages, with the fields journald gives kernel entries) with
 * systemd-journal-remote, then times readJournalOnce over it as `parse --journal` reads it (in parts,
 * one journalctl per core, since the journal is large), the same read by one journalctl (as the live
 * agent follows the journal), and journalctl alone writing the whole export stream to /dev/null,
 * which is the ceiling of one journalctl. Prints one JSON line with the medians of three runs.
 *
 *   node test/bench/journal.ts [ENTRIES]
 */

import { spawn } from 'node:child_process';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ReadJournalOptions, readJournalOnce } from '../../agent/tools/bulk/journal-read.ts';
import { appendJournal, calicoMessage, type JournalEntry, MACHINE_ID, tempDir } from '../support/journal.ts';
import { round } from './measure.ts';

const TARGET_ENTRIES_PER_SECOND = 150_000;
const RUNS = 3;
/** systemd-journal-remote is fed in parts so the export text never has to be held whole. */
const ENTRIES_PER_APPEND = 25_000;

const OTHER_KERNEL_MESSAGES = [
  'IPv6: ADDRCONF(NETDEV_CHANGE): cali6e7bb88b982: link becomes ready',
  'eth0: renamed from tmp3f1c2',
  'TCP: request_sock_TCP: Possible SYN flooding on port 10250. Sending cookies.',
];

function kernelEntry(n: number, startUs: number): JournalEntry {
  const realtimeUs = startUs + n * 50;
  const message = n % 10 === 9 ? OTHER_KERNEL_MESSAGES[n % 3]! : calicoMessage(n);
  return {
    message,
    realtimeUs,
    hostname: 'gke-cluster-k8s-default-pool-d4371b02-9s00',
    fields: { _SOURCE_MONOTONIC_TIMESTAMP: String(realtimeUs % 1e12), _MACHINE_ID: MACHINE_ID },
  };
}

async function buildJournal(file: string, entries: number): Promise<void> {
  const startUs = (Date.now() - 3_600_000) * 1000;
  for (let first = 0; first < entries; first += ENTRIES_PER_APPEND) {
    const count = Math.min(ENTRIES_PER_APPEND, entries - first);
    await appendJournal(
      file,
      Array.from({ length: count }, (_, i) => kernelEntry(first + i, startUs)),
    );
  }
}

async function timeIngest(directory: string, options: ReadJournalOptions): Promise<number> {
  const started = performance.now();
  let records = 0;
  for await (const batch of readJournalOnce(directory, options)) records += batch.length;
  if (records !== entries) throw new Error(`read ${records} records, expected ${entries}`);
  return (performance.now() - started) / 1000;
}

async function timeJournalctl(directory: string): Promise<number> {
  const devNull = await open('/dev/null', 'w');
  const started = performance.now();
  try {
    const child = spawn(
      'journalctl',
      [`--directory=${directory}`, '--output=export', '--no-pager', '_TRANSPORT=kernel'],
      { stdio: ['ignore', devNull.fd, 'inherit'] },
    );
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (code !== 0) throw new Error(`journalctl exited with ${code}`);
  } finally {
    await devNull.close();
  }
  return (performance.now() - started) / 1000;
}

function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

const entries = Number(process.argv[2] ?? 200_000);
const dir = await tempDir('journal-bench');
try {
  await buildJournal(join(dir, 'system.journal'), entries);
  const ingest: number[] = [];
  const oneReader: number[] = [];
  const journalctl: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    ingest.push(await timeIngest(dir, {}));
    oneReader.push(await timeIngest(dir, { parallelMinBytes: Number.POSITIVE_INFINITY }));
    journalctl.push(await timeJournalctl(dir));
  }
  const seconds = median(ingest);
  const entriesPerSecond = Math.round(entries / seconds);
  const oneReaderSeconds = median(oneReader);
  const journalctlSeconds = median(journalctl);
  process.stdout.write(
    `${JSON.stringify({
      bench: 'journal',
      entries,
      seconds: round(seconds, 3),
      entriesPerSecond,
      target: TARGET_ENTRIES_PER_SECOND,
      met: entriesPerSecond >= TARGET_ENTRIES_PER_SECOND,
      runSeconds: ingest.map((run) => round(run, 3)),
      oneReaderSeconds: round(oneReaderSeconds, 3),
      oneReaderEntriesPerSecond: Math.round(entries / oneReaderSeconds),
      journalctlSeconds: round(journalctlSeconds, 3),
      journalctlEntriesPerSecond: Math.round(entries / journalctlSeconds),
    })}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
