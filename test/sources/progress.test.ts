// What readiness and stall detection learn from the sources, on real files and real journals: why a
// source is not reading (problem), and whether its input holds data it has not taken (progress).

import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Metrics } from '../../agent/metrics.ts';
import { CheckpointDirectory } from '../../agent/sources/checkpoint.ts';
import { FileSource } from '../../agent/sources/file.ts';
import { JournalSource } from '../../agent/sources/journal.ts';
import { type LogSource, NOT_STARTED, type RecordHandler } from '../../agent/sources/source.ts';
import { syslogReader } from '../parser/samples.ts';
import { caseDirs } from '../support/case-dirs.ts';
import { appendJournal, journalctlSpy } from '../support/journal.ts';

const dirs = caseDirs('source-progress');
const log = pino({ level: 'silent' });
const running: LogSource[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((source) => source.stop()));
});

async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A handler that takes batches until `hold()`, then keeps the next one until `release()`. */
function gate() {
  let held = false;
  let release = () => {};
  let batches = 0;
  const handle: RecordHandler = async () => {
    batches++;
    if (held) await new Promise<void>((resolve) => (release = resolve));
  };
  return {
    handle,
    batches: () => batches,
    hold: () => (held = true),
    release: () => {
      held = false;
      release();
    },
  };
}

/** The source has looked at its input and says why it cannot read it. */
const reported = (source: LogSource): boolean =>
  source.problem() !== null && source.problem() !== NOT_STARTED;

function start(source: LogSource, handle: RecordHandler): void {
  running.push(source);
  void source.run(handle);
}

describe('FileSource', () => {
  const fileSource = (path: string, state: string) =>
    new FileSource({
      path,
      checkpoints: new CheckpointDirectory(state, log),
      pollIntervalMs: 20,
      log,
      metrics: new Metrics(),
      syslog: syslogReader(),
    });

  it('sees input it has not taken: before reading, and while its handler holds a batch', async () => {
    const dir = await dirs.next();
    const path = join(dir, 'kern.log');
    await writeFile(path, 'one\ntwo\n');
    const source = fileSource(path, join(dir, 'state'));
    expect(source.problem()).toBe(NOT_STARTED);
    expect(await source.progress()).toEqual({ taken: 0, unread: false });

    const handler = gate();
    start(source, handler.handle);
    await until('the lines read', async () => (await source.progress()).taken === 8);
    expect(await source.progress()).toEqual({ taken: 8, unread: false });
    // Cleared once the look that read them has handed them over, a moment after they count as taken.
    await until('no problem', () => source.problem() === null);

    handler.hold();
    await appendFile(path, 'three\n');
    await until('the batch held', () => handler.batches() === 2);
    await appendFile(path, 'four\n');
    expect(await source.progress()).toEqual({ taken: 14, unread: true });
    handler.release();
    await until('the rest read', async () => (await source.progress()).taken === 19);
    expect((await source.progress()).unread).toBe(false);
  });

  it('says why it is not reading while the path is missing or a directory, and clears it once it reads', async () => {
    const dir = await dirs.next();
    const path = join(dir, 'kern.log');
    const source = fileSource(path, join(dir, 'state'));
    start(source, () => {});
    await until('the problem', () => reported(source));
    expect(source.problem()).toBe(`${path} does not exist; waiting for it to appear`);

    await mkdir(path);
    await until(
      'the new problem',
      () => source.problem() !== `${path} does not exist; waiting for it to appear`,
    );
    expect(source.problem()).toMatch(
      new RegExp(`^${path} is a directory, not a regular file; IPTABLES_LOG_PATH`),
    );
    expect((await source.progress()).unread).toBe(false);
  });

  it('clears the problem once the file appears and is read', async () => {
    const dir = await dirs.next();
    const path = join(dir, 'kern.log');
    const source = fileSource(path, join(dir, 'state'));
    start(source, () => {});
    await until('the problem', () => reported(source));
    await writeFile(path, 'one\n');
    await until('reading', async () => source.problem() === null && (await source.progress()).taken === 4);
  });
});

describe('JournalSource', () => {
  const journalSource = (directory: string, state: string, journalctl?: string) =>
    new JournalSource({
      directory,
      checkpoints: new CheckpointDirectory(state, log),
      expirationMs: 10 * 60_000,
      log,
      metrics: new Metrics(),
      // A directory that appears is noticed in a tenth of a second, not 2 s.
      directoryCheckMs: 100,
      ...(journalctl === undefined ? {} : { journalctl }),
    });
  const entries = (...messages: string[]) => messages.map((message) => ({ message }));

  it('sees kernel entries after the ones it took, asking journalctl from where the follower goes on', async () => {
    const dir = await dirs.next();
    const journal = join(dir, 'journal');
    const file = join(journal, 'system.journal');
    await appendJournal(file, entries('one', 'two'));
    const source = journalSource(journal, join(dir, 'state'));
    expect(source.problem()).toBe(NOT_STARTED);

    const handler = gate();
    start(source, handler.handle);
    await until('the entries read', async () => (await source.progress()).taken === 2);
    expect(await source.progress()).toEqual({ taken: 2, unread: false });
    expect(source.problem()).toBeNull();

    handler.hold();
    await appendJournal(file, entries('three'));
    await until('the batch held', () => handler.batches() === 2);
    await appendJournal(file, entries('four'));
    expect(await source.progress()).toEqual({ taken: 3, unread: true });
    handler.release();
    await until('the rest read', async () => (await source.progress()).taken === 4);
    expect((await source.progress()).unread).toBe(false);
  });

  it('says why it is not reading while the directory is missing, until it appears', async () => {
    const dir = await dirs.next();
    const journal = join(dir, 'journal');
    const source = journalSource(journal, join(dir, 'state'));
    start(source, () => {});
    await until('the problem', () => reported(source));
    expect(source.problem()).toBe(`journal directory ${journal} does not exist; waiting for it to appear`);
    expect((await source.progress()).unread).toBe(false);
    await appendJournal(join(journal, 'system.journal'), entries('one'));
    await until('reading', async () => source.problem() === null && (await source.progress()).taken === 1);
  });

  it('says journalctl is missing, and counts down to the next try', async () => {
    const dir = await dirs.next();
    let now = 1_000_000;
    const source = new JournalSource({
      directory: dir,
      checkpoints: new CheckpointDirectory(join(dir, 'state'), log),
      expirationMs: 10 * 60_000,
      log,
      metrics: new Metrics(),
      journalctl: join(dir, 'no-journalctl'),
      now: () => now,
    });
    start(source, () => {});
    await until('the problem', () => reported(source));
    const missing = `${join(dir, 'no-journalctl')} not found: the image needs journalctl (package systemd) in PATH`;
    expect(source.problem()).toBe(`${missing}; retrying in 0.5 s`);
    now += 300;
    expect(source.problem()).toBe(`${missing}; retrying in 0.2 s`);
    now += 200;
    expect(source.problem()).toBe(`${missing}; retrying now`);
  });
});

describe('JournalSource looks', () => {
  it('ask journalctl again only once the journal files changed since it last found nothing unread', async () => {
    const dir = await dirs.next();
    const journal = join(dir, 'journal');
    const file = join(journal, 'system.journal');
    await appendJournal(file, [{ message: 'one' }]);
    const spy = await journalctlSpy(dir);
    const source = new JournalSource({
      directory: journal,
      checkpoints: new CheckpointDirectory(join(dir, 'state'), log),
      expirationMs: 10 * 60_000,
      log,
      metrics: new Metrics(),
      journalctl: spy.path,
    });
    start(source, () => {});
    await until('the entry read', async () => (await source.progress()).taken === 1);
    // The look that saw the entry arrive may have found it unread; this one finds nothing.
    expect(await source.progress()).toEqual({ taken: 1, unread: false });
    const runs = (await spy.runs()).length;
    for (let i = 0; i < 3; i++) expect(await source.progress()).toEqual({ taken: 1, unread: false });
    expect((await spy.runs()).length).toBe(runs);

    await appendJournal(file, [{ message: 'two', transport: 'syslog' }]);
    expect(await source.progress()).toEqual({ taken: 1, unread: false });
    expect((await spy.runs()).length).toBe(runs + 1);
    expect(await source.progress()).toEqual({ taken: 1, unread: false });
    expect((await spy.runs()).length).toBe(runs + 1);
  });
});
