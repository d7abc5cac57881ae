// FileSource in a process of its own: the process must end by itself after stop() (no leaked watcher,
// timer or file handle), and a file it may not read is reported and picked up once it becomes readable,
// which needs a user that permissions apply to (root reads everything).

import { type ChildProcess, spawn } from 'node:child_process';
import { access, appendFile, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { tempDir } from '../support/journal.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NOBODY = 65534;
const DEADLINE_MS = 10_000;

/**
 * Follows PATH, printing one JSON object per line read and per change of the error counters; stops
 * when it reads the line "stop" and then prints {"stopped":true}. It never calls process.exit.
 */
const SCRIPT = `
import { pino } from 'pino';
import { Metrics } from './agent/metrics.ts';
import { CheckpointDirectory } from './agent/sources/checkpoint.ts';
import { FileSource } from './agent/sources/file.ts';
import { SyslogReader } from './agent/sources/syslog/record.ts';

const print = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
const metrics = new Metrics();
const log = pino({ level: 'silent' });
const source = new FileSource({
  path: process.env.FILE_PATH,
  checkpoints: new CheckpointDirectory(process.env.STATE_DIR, log),
  pollIntervalMs: 50,
  log,
  metrics,
  syslog: new SyslogReader({ prefix: 'calico-packet', timeLayout: null, now: Date.now }),
});
let reported = '';
const errors = setInterval(async () => {
  const counts = Object.fromEntries((await metrics.sourceErrors.get()).values.map((v) => [v.labels.reason, v.value]));
  const text = JSON.stringify(counts);
  if (text !== reported) print({ errors: counts });
  reported = text;
}, 10);
errors.unref();
await source.run((records) => {
  for (const record of records) print({ line: record.text });
  if (records.some((record) => record.text === 'stop')) void source.stop();
});
print({ stopped: true });
`;

interface Child {
  messages: Record<string, unknown>[];
  exited: Promise<number | null>;
  process: ChildProcess;
}

function start(env: Record<string, string>, uid?: number): Child {
  const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  const messages: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    messages.push(...lines.map((line) => JSON.parse(line) as Record<string, unknown>));
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  children.push(child);
  return { messages, exited, process: child };
}

async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + DEADLINE_MS;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Fails if the process does not end by itself soon after it printed {"stopped":true}. */
async function exitsAfterStop(child: Child): Promise<void> {
  await until('stopped', () => child.messages.some((m) => m.stopped === true));
  const timeout = setTimeout(() => child.process.kill(), 5000);
  const code = await child.exited;
  clearTimeout(timeout);
  expect(code).toBe(0);
}

const lines = (child: Child): unknown[] => child.messages.filter((m) => 'line' in m).map((m) => m.line);

/** The source saves its position as soon as it opens the file. */
function opened(state: string): Promise<void> {
  const file = join(state, 'file.position.json');
  return until('the first checkpoint', () =>
    access(file).then(
      () => true,
      () => false,
    ),
  );
}

let root: string;
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill();
});

beforeAll(async () => {
  root = await tempDir('file-source-process');
  // Reachable by the unprivileged user of the permission test.
  await chmod(root, 0o755);
});

afterAll(() => rm(root, { recursive: true, force: true }));

it('ends the process by itself after stop()', async () => {
  const path = join(root, 'exit.log');
  const state = join(root, 'exit-state');
  // One unfinished line: the source starts at its beginning.
  await writeFile(path, 'a1');
  const child = start({ FILE_PATH: path, STATE_DIR: state });
  await opened(state);
  await appendFile(path, '\nstop\n');
  await exitsAfterStop(child);
  expect(lines(child)).toEqual(['a1', 'stop']);
});

it.skipIf(process.getuid?.() !== 0)(
  'reports a file it may not read once, and reads it when it becomes readable',
  async () => {
    const state = join(root, 'unreadable-state');
    await mkdir(state, { mode: 0o777 });
    await chmod(state, 0o777);
    const path = join(root, 'unreadable.log');
    await writeFile(path, 'a1', { mode: 0o600 });
    const child = start({ FILE_PATH: path, STATE_DIR: state }, NOBODY);
    const unreadable = (): number[] =>
      child.messages.flatMap((m) => {
        const errors = m.errors as Record<string, number> | undefined;
        return errors?.unreadable === undefined ? [] : [errors.unreadable];
      });
    await until('unreadable', () => unreadable().length > 0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(unreadable()).toEqual([1]);
    await chmod(path, 0o644);
    await opened(state);
    await appendFile(path, '\nstop\n');
    await exitsAfterStop(child);
    expect(lines(child)).toEqual(['a1', 'stop']);
  },
);
