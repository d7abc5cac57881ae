// The settling order of checkpoints: SettledPositions alone (pure, promises only), then ThrottledCheckpoint
// on a real checkpoint file in a temp dir. The promises stand for the event writer's receipts: a batch's
// position may be saved only once it and every earlier batch settled.

import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckpointDirectory,
  MAX_UNSETTLED,
  SettledPositions,
  ThrottledCheckpoint,
} from '../../agent/sources/checkpoint.ts';
import { tempDir } from '../support/journal.ts';

let root: string;
let cases = 0;
beforeAll(async () => {
  root = await tempDir('checkpoint');
});
afterAll(() => rm(root, { recursive: true, force: true }));

function gate(): { settled: Promise<void>; open: () => void; fail: () => void } {
  let open = () => {};
  let fail = () => {};
  const settled = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = () => reject(new Error('write failed'));
  });
  return { settled, open, fail };
}

/** After every promise callback already due has run. */
const drained = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** SettledPositions of numbers, and every value it passed on. */
function tracked(): { positions: SettledPositions<number>; passed: number[] } {
  const passed: number[] = [];
  return { positions: new SettledPositions<number>((value) => passed.push(value)), passed };
}

describe('SettledPositions: in order, in bounded memory', () => {
  it('passes a value on at once while nothing waits, and never past an unsettled batch', async () => {
    const { positions, passed } = tracked();
    const first = gate();
    const second = gate();
    positions.add(1);
    expect(passed).toEqual([1]);
    positions.add(2, first.settled);
    positions.add(3, second.settled);
    positions.add(4);
    second.open();
    await drained();
    expect(passed).toEqual([1]);
    first.open();
    await drained();
    expect(passed).toEqual([1, 4]);
  });

  it('counts a rejected batch as settled, leaving no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const note = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', note);
    try {
      const { positions, passed } = tracked();
      const failed = gate();
      positions.add(1, failed.settled);
      positions.add(2);
      failed.fail();
      await drained();
      await drained();
      expect(passed).toEqual([2]);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', note);
    }
  });

  it(`keeps batches sharing one receipt as one entry, so ${MAX_UNSETTLED + 1} of them leave room for the next`, async () => {
    const { positions, passed } = tracked();
    const shared = gate();
    const later = gate();
    for (let value = 1; value <= MAX_UNSETTLED + 1; value++) positions.add(value, shared.settled);
    positions.add(MAX_UNSETTLED + 2, later.settled);
    shared.open();
    await drained();
    // Had each batch taken an entry, the last would have joined the one before it and wait for `later`.
    expect(passed).toEqual([MAX_UNSETTLED + 1]);
    later.open();
    await drained();
    expect(passed).toEqual([MAX_UNSETTLED + 1, MAX_UNSETTLED + 2]);
  });

  it.each([
    ['the newest batch', MAX_UNSETTLED + 1],
    ['the batch it joined', MAX_UNSETTLED],
  ])(
    `past ${MAX_UNSETTLED} waiting, joins a new batch to the last, which then waits for both: %s settling last`,
    async (_, last) => {
      const { positions, passed } = tracked();
      const gates = Array.from({ length: MAX_UNSETTLED + 1 }, gate);
      for (const [i, g] of gates.entries()) positions.add(i + 1, g.settled);
      for (const [i, g] of gates.entries()) if (i + 1 !== last) g.open();
      await drained();
      expect(passed.at(-1)).toBe(MAX_UNSETTLED - 1);
      gates[last - 1]!.open();
      await drained();
      expect(passed.at(-1)).toBe(MAX_UNSETTLED + 1);
    },
  );

  it('passes on, whatever order batches settle in, the newest value before the first unsettled batch', async () => {
    /** A batch with nothing to settle, with a receipt of its own, or with one an earlier batch had. */
    const batch = fc.oneof(
      fc.constant({ kind: 'none' as const }),
      fc.constant({ kind: 'own' as const }),
      fc.record({ kind: fc.constant('shared' as const), pick: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(batch, { maxLength: 12 }),
        fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 12 }),
        async (batches, steps) => {
          const { positions, passed } = tracked();
          const gates: { g: ReturnType<typeof gate>; done: boolean }[] = [];
          const gateOf: (number | null)[] = [];
          for (const [i, b] of batches.entries()) {
            if (b.kind === 'none') {
              gateOf.push(null);
              positions.add(i + 1);
              continue;
            }
            if (b.kind === 'own' || gates.length === 0) gates.push({ g: gate(), done: false });
            const index = b.kind === 'shared' && gates.length > 0 ? b.pick % gates.length : gates.length - 1;
            gateOf.push(index);
            positions.add(i + 1, gates[index]!.g.settled);
          }
          const check = () => {
            const unsettled = gateOf.findIndex((index) => index !== null && !gates[index]!.done);
            const prefix = unsettled < 0 ? batches.length : unsettled;
            expect(passed.at(-1)).toBe(prefix === 0 ? undefined : prefix);
            expect(passed).toEqual([...new Set(passed)].sort((a, b) => a - b));
          };
          check();
          const open = (index: number, reject: boolean) => {
            gates[index]!.done = true;
            if (reject) gates[index]!.g.fail();
            else gates[index]!.g.open();
          };
          for (const [pick, reject] of steps) {
            const waiting = gates.flatMap((g, index) => (g.done ? [] : [index]));
            if (waiting.length === 0) break;
            open(waiting[pick % waiting.length]!, reject);
            await drained();
            check();
          }
          for (const [index, g] of gates.entries()) if (!g.done) open(index, false);
          await drained();
          check();
        },
      ),
    );
  });
});

/** A checkpoint of numbers and a way to read what it saved after a flush. */
function numbers() {
  const dir = join(root, `case-${++cases}`);
  const checkpoint = new ThrottledCheckpoint<number>(
    new CheckpointDirectory(dir, pino({ level: 'silent' })).checkpoint<number>('n.json'),
    60_000,
  );
  const saved = async (): Promise<number | null> => {
    await new Promise((resolve) => setImmediate(resolve));
    await checkpoint.flush();
    return JSON.parse(await readFile(join(dir, 'n.json'), 'utf8').catch(() => 'null')) as number | null;
  };
  return { checkpoint, saved };
}

describe('ThrottledCheckpoint: settled batches only', () => {
  it('keeps a position behind an unsettled batch, even when later batches settled or had nothing to settle', async () => {
    const { checkpoint, saved } = numbers();
    const first = gate();
    const second = gate();
    checkpoint.update(1);
    checkpoint.update(2, first.settled);
    checkpoint.update(3, second.settled);
    checkpoint.update(4);
    second.open();
    expect(await saved()).toBe(1);
    first.open();
    expect(await saved()).toBe(4);
  });

  it('moves on at once when nothing waits, and counts a rejected batch as settled', async () => {
    const { checkpoint, saved } = numbers();
    const failed = gate();
    checkpoint.update(1);
    expect(await saved()).toBe(1);
    checkpoint.update(2, failed.settled);
    checkpoint.update(3);
    failed.fail();
    expect(await saved()).toBe(3);
  });

  it('lets batches that share one receipt wait as one', async () => {
    const { checkpoint, saved } = numbers();
    const shared = gate();
    const later = gate();
    checkpoint.update(1, shared.settled);
    checkpoint.update(2, shared.settled);
    checkpoint.update(3, later.settled);
    shared.open();
    expect(await saved()).toBe(2);
    later.open();
    expect(await saved()).toBe(3);
  });
});

describe('CheckpointDirectory: one warning per unusable directory', () => {
  it('warns once for all of its checkpoints when it names a file, and saves nothing', async () => {
    const file = join(root, `case-${++cases}`);
    await writeFile(file, 'not a directory');
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    const directory = new CheckpointDirectory(file, log);
    const cursor = directory.checkpoint<number>('cursor.json');
    const combining = directory.checkpoint<number>('combining.json');
    expect(await cursor.load((value): value is number => typeof value === 'number')).toBeNull();
    await cursor.save(1);
    await combining.save(2);
    await combining.save(3);
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ directory: file, reason: 'ENOTDIR' });
    expect(await readFile(file, 'utf8')).toBe('not a directory');
  });

  it('warns nothing while its checkpoints load and save', async () => {
    const dir = join(root, `case-${++cases}`);
    const warnings: string[] = [];
    const directory = new CheckpointDirectory(
      dir,
      pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) }),
    );
    await directory.checkpoint<number>('n.json').save(7);
    expect(await directory.checkpoint<number>('n.json').load((v): v is number => typeof v === 'number')).toBe(
      7,
    );
    expect(warnings).toEqual([]);
  });
});
