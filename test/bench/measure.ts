// What the benchmarks measure with: rounding, percentiles, a bounded task pool, a process's CPU time and
// peak memory read from /proc, and an agent's heap after a full collection.

import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { type AgentProcess, metricValue, waitFor } from '../e2e/agent-process.ts';

export const round = (n: number, digits: number): number => Math.round(n * 10 ** digits) / 10 ** digits;

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `task(0..count-1)` with at most `limit` running at once. */
export async function pool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

const REPO = new URL('../..', import.meta.url).pathname;

/** What the image runs: `npm run build`'s dist/, built now so that a bench measures exactly what ships. */
export async function buildDist(): Promise<string> {
  await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: REPO });
  return 'dist/cli.js';
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds the process has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name, which may itself hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** The process's peak resident memory (VmHWM), bytes. */
export async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/** PIDs of the processes whose command line contains `text`. */
export async function pidsWith(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) pids.push(Number(name));
  }
  return pids;
}

/** NODE_OPTIONS flags that let heapAfterGc collect: a heap snapshot on SIGUSR2, written to `dir`. */
export const snapshotFlags = (dir: string): string => `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`;

/**
 * The agent's V8 heap in use right after a full collection: what it really keeps, unlike the heap as found,
 * which holds whatever garbage V8 has not collected yet. A heap snapshot (SIGUSR2, with snapshotFlags) is
 * preceded by a full collection; it is written on the main thread, so the scrape after it is answered only
 * once it is complete.
 */
export async function heapAfterGc(agent: AgentProcess, dir: string): Promise<number> {
  const before = (await readdir(dir)).length;
  agent.child.kill('SIGUSR2');
  await waitFor(async () => (await readdir(dir)).length > before, 60_000, 'a heap snapshot');
  return metricValue(await agent.metrics(), 'nodejs_heap_size_used_bytes');
}
