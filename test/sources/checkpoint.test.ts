// ThrottledCheckpoint's settling order, on a real checkpoint file in a temp dir. The promises stand for the
// event writer's receipts: a batch's position may be saved only once it and every earlier batch settled.

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, ThrottledCheckpoint } from '../../agent/sources/checkpoint.ts';
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

/** A checkpoint of numbers and a way to read what it saved after a flush. */
function numbers() {
  const dir = join(root, `case-${++cases}`);
  const checkpoint = new ThrottledCheckpoint<number>(
    new Checkpoint(dir, 'n.json', pino({ level: 'silent' })),
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
