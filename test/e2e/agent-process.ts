// The agent as a separate process, the way the DaemonSet runs it: `node agent/cli.ts run` configured by
// environment variables only, probed over its HTTP port.

import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseExposition, parseSample } from '../../agent/tools/doctor/exposition.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

export interface AgentProcess {
  port: number;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs(): Record<string, unknown>[];
  metrics(): Promise<string>;
  /** SIGTERM and the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `root` is the checkout whose agent runs: this one, or another to measure side by side; `entry` its CLI:
 * the sources, or the build the image runs (dist/cli.js), whose memory is the DaemonSet's.
 */
export async function startAgent(
  env: Record<string, string>,
  root = ROOT,
  entry = 'agent/cli.ts',
): Promise<AgentProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, entry), 'run'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      LOG_LEVEL: 'debug',
      REVERSE_DNS: 'false',
      METRICS_SERVER_PORT: String(port),
      ...env,
    },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const agent: AgentProcess = {
    port,
    child,
    logs: () => lines,
    metrics: async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  await waitFor(
    async () => {
      if (child.exitCode !== null) {
        throw new Error(`agent exited with ${child.exitCode}: ${JSON.stringify(lines.slice(-5))}`);
      }
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
      return res?.status === 200;
    },
    30_000,
    'agent ready',
  );
  return agent;
}

/** Polls until the condition holds; fails with what it was waiting for. */
export async function waitFor<T>(
  condition: () => Promise<T | false | null | undefined> | T | false | null | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The value of the sample of `name` with exactly these labels (as written: `reason="x"`), 0 when absent. */
export function metricValue(text: string, name: string, labels = ''): number {
  const wanted = labels === '' ? new Map<string, string>() : parseSample(`${name}{${labels}} 0`)?.labels;
  if (wanted === undefined) throw new Error(`not labels: ${labels}`);
  const sample = parseExposition(text).samples.find(
    (s) =>
      s.name === name &&
      s.labels.size === wanted.size &&
      [...wanted].every(([key, value]) => s.labels.get(key) === value),
  );
  return sample?.value ?? 0;
}

/** Every sample of a metric, whatever its labels, added up. */
export function metricSum(text: string, name: string): number {
  return parseExposition(text)
    .samples.filter((sample) => sample.name === name)
    .reduce((sum, sample) => sum + sample.value, 0);
}
