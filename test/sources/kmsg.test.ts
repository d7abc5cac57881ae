// KmsgSource on the real /dev/kmsg (records a process writes, and real netfilter LOG lines of the real
// kernel in a network namespace) and on a stand-in device for what cannot be made to happen here on demand:
// a ring buffer that wraps between two reads (flooding the machine's real buffer would wipe the kernel
// messages other tests read), a record longer than the read buffer, a device that appears late.

import { writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../agent/metrics.ts';
import { CheckpointDirectory } from '../../agent/sources/checkpoint.ts';
import { type KmsgDevice, KmsgSource, type KmsgSourceOptions } from '../../agent/sources/kmsg.ts';
import { KERNEL_FACILITY } from '../../agent/sources/kmsg-record.ts';
import type { LogRecord } from '../../agent/types.ts';
import { tempDir } from '../support/journal.ts';
import { KernelNet } from '../support/kernel-net.ts';
import { kmsgCheckpointAtNewest, kmsgRecords } from '../support/kmsg.ts';

const DEADLINE_MS = 10_000;
const BOOT_ID = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
const LINE =
  'calico-packet: IN=eth0 OUT= SRC=10.4.0.7 DST=10.4.0.16 LEN=60 PROTO=TCP SPT=40000 DPT=12865 SYN ';

let root: string;
let caseCount = 0;
const running: KmsgSource[] = [];

beforeAll(async () => {
  root = await tempDir('kmsg-source');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((source) => source.stop()));
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + DEADLINE_MS;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * A ring buffer of records as the kernel keeps them: each open file has its own position, starts at the
 * oldest record kept, and gets EPIPE once when records after its position were overwritten.
 */
class StandInKmsg {
  private records: { sequence: number; text: string }[] = [];
  private next = 0;
  opens = 0;

  log(message: string, priority = 4, timestampUs = 1_000_000): number {
    const sequence = this.next++;
    this.records.push({ sequence, text: `${priority},${sequence},${timestampUs},-;${message}\n` });
    return sequence;
  }

  /** Bytes that are not a record, where the next record would be. */
  garbage(text: string): void {
    this.records.push({ sequence: this.next++, text });
  }

  /** Drops the oldest records, as a full buffer does when the kernel logs on. */
  overwrite(count: number): void {
    this.records.splice(0, count);
  }

  open = (): KmsgDevice => {
    this.opens++;
    let position = this.records[0]?.sequence ?? this.next;
    return {
      read: (buffer) => {
        const oldest = this.records[0]?.sequence ?? this.next;
        if (position < oldest) {
          position = oldest;
          throw Object.assign(new Error('EPIPE'), { code: 'EPIPE' });
        }
        const record = this.records.find((r) => r.sequence >= position);
        if (record === undefined) throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
        const bytes = Buffer.from(record.text, 'latin1');
        if (bytes.length > buffer.length) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
        position = record.sequence + 1;
        return bytes.copy(buffer);
      },
      close: () => {},
    };
  };
}

interface Tail {
  source: KmsgSource;
  records: LogRecord[];
  metrics: Metrics;
  checkpoints: string;
}

async function tail(
  options: Omit<Partial<KmsgSourceOptions>, 'checkpoints'> & { checkpoints?: string } = {},
): Promise<Tail> {
  const checkpoints = options.checkpoints ?? join(root, `case-${++caseCount}`);
  const metrics = new Metrics();
  const log = pino({ level: 'silent' });
  const source = new KmsgSource({
    path: '/dev/kmsg',
    expirationMs: 10 * 60_000,
    host: 'node-a',
    log,
    metrics,
    ...options,
    checkpoints: new CheckpointDirectory(checkpoints, log),
  });
  const records: LogRecord[] = [];
  running.push(source);
  void source.run((batch) => {
    records.push(...batch);
  });
  return { source, records, metrics, checkpoints };
}

async function sourceErrors(metrics: Metrics): Promise<Record<string, number>> {
  const { values } = await metrics.sourceErrors.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.reason), v.value]));
}

async function lost(metrics: Metrics): Promise<number> {
  return (await metrics.kmsgRecordsLost.get()).values[0]?.value ?? 0;
}

/** The records a process wrote to the real device: any facility but the kernel's. */
const userRecords = () => kmsgRecords().filter((record) => record.facility !== KERNEL_FACILITY);

const sequenceOf = (message: string): number =>
  userRecords().find((record) => record.message === message)?.sequence ?? Number.POSITIVE_INFINITY;

const userRecordsAfter = (sequence: number): number =>
  userRecords().filter((record) => record.sequence > sequence).length;

/** A checkpoint at the real buffer's newest record: the source reads only what is logged after this. */
async function checkpointAtNewest(): Promise<string> {
  const checkpoints = join(root, `case-${++caseCount}`);
  await kmsgCheckpointAtNewest(checkpoints);
  return checkpoints;
}

describe('KmsgSource on the real /dev/kmsg', () => {
  it('hands over the real kernel LOG lines, dated now, and ignores what a process wrote to the device', async () => {
    const net = KernelNet.start();
    try {
      net.logAndDrop('iptables', ['-p', 'tcp', '--dport', '12865']);
      const t = await tail({ checkpoints: await checkpointAtNewest() });
      await until('the source reading', () => t.source.problem() === null);
      // A forgery: user space's records get facility 1 (user) whatever priority they name.
      writeFileSync('/dev/kmsg', `<4>${LINE.replace('10.4.0.7', net.client.ipv4)}\n`);
      const before = Date.now();
      await net.tcp(net.server.ipv4, 12865);
      const marker = `IN=${net.server.device} `;
      await until('the kernel LOG line', () => t.records.some((r) => r.text.includes(marker)));
      const logged = t.records.filter((r) => r.text.includes(net.client.ipv4));
      expect(logged.length).toBeGreaterThan(0);
      for (const record of logged) {
        expect(record.text).toMatch(
          new RegExp(
            `^calico-packet: ${marker}.* SRC=${net.client.ipv4} DST=${net.server.ipv4} .*PROTO=TCP .*DPT=12865 `,
          ),
        );
        expect(record.host).toBe('node-a');
        // The kernel's clock turned into wall time: within the seconds the connection attempt took.
        expect(record.time).toBeGreaterThanOrEqual(before - 1000);
        expect(record.time).toBeLessThanOrEqual(Date.now() + 1000);
      }
      expect((await sourceErrors(t.metrics)).untrusted_facility).toBeGreaterThanOrEqual(1);
    } finally {
      net.stop();
    }
  });

  it('resumes after the checkpointed record after a restart, without handing a record over twice', async () => {
    const checkpoints = await checkpointAtNewest();
    const first = await tail({ checkpoints });
    await until('the source reading', () => first.source.problem() === null);
    const tag = `kmsg-resume-${process.pid}-${Date.now()}`;
    // Records a process writes are ignored by the source, but still move its position: the checkpoint shows it.
    writeFileSync('/dev/kmsg', `${tag} one\n`);
    await until(
      'the first record taken',
      async () => ((await sourceErrors(first.metrics)).untrusted_facility ?? 0) >= 1,
    );
    await first.source.stop();
    const saved = JSON.parse(await readFile(join(checkpoints, 'kmsg.position.json'), 'utf8')) as {
      bootId: string;
      sequence: number;
    };
    expect(saved.bootId).toBe(BOOT_ID);
    expect(saved.sequence).toBeGreaterThanOrEqual(sequenceOf(`${tag} one`));
    writeFileSync('/dev/kmsg', `${tag} two\n`);
    const second = await tail({ checkpoints });
    await until(
      'the second record taken',
      async () => ((await sourceErrors(second.metrics)).untrusted_facility ?? 0) >= 1,
    );
    await sleep(300);
    // Only records after the checkpoint, "two" and whatever else a process wrote meanwhile: never "one" again.
    const counted = (await sourceErrors(second.metrics)).untrusted_facility ?? 0;
    expect(counted).toBeLessThanOrEqual(userRecordsAfter(saved.sequence));
  });

  it('says what is wrong with a path that is not the device, and reads once it is', async () => {
    const missing = await tail({ path: join(root, 'no-such-kmsg') });
    await until('the problem', () => missing.source.problem()?.includes('does not exist') === true);
    const file = join(root, 'regular-file');
    await writeFile(file, LINE);
    const regular = await tail({ path: file });
    await until('the problem', () => regular.source.problem()?.includes('not a character device') === true);
    expect(regular.records).toEqual([]);
    expect(await sourceErrors(regular.metrics)).toEqual({ not_a_character_device: 1 });
  });
});

describe('KmsgSource on a stand-in ring buffer', () => {
  const bootTime = Date.UTC(2026, 11, 5, 8);

  it('hands over the kernel records with their time, and counts the malformed and user-space ones', async () => {
    const device = new StandInKmsg();
    device.log(LINE, 4, 5_000_000);
    device.log(LINE, 12);
    device.garbage('not a record at all');
    const t = await tail({ open: device.open, bootTime: () => bootTime, now: () => bootTime + 60_000 });
    await until('the records', async () => (await sourceErrors(t.metrics)).untrusted_facility === 1);
    expect(t.records).toEqual([{ text: LINE, time: bootTime + 5000, host: 'node-a' }]);
    expect(await sourceErrors(t.metrics)).toEqual({ untrusted_facility: 1, kmsg_malformed: 1 });
  });

  it('on a first start skips the records older than PACKET_DROP_EXPIRATION_MINUTES', async () => {
    const device = new StandInKmsg();
    device.log(`${LINE}old`, 4, 1_000_000);
    device.log(`${LINE}new`, 4, 11 * 60_000_000);
    const t = await tail({ open: device.open, bootTime: () => bootTime, now: () => bootTime + 12 * 60_000 });
    await until('the new record', () => t.records.length === 1);
    expect(t.records[0]!.text).toBe(`${LINE}new`);
  });

  it('counts and logs the records the ring buffer overwrote between two reads, and reads on', async () => {
    const device = new StandInKmsg();
    device.log(LINE);
    const t = await tail({ open: device.open, bootTime: () => bootTime, now: () => bootTime });
    await until('the first record', () => t.records.length === 1);
    for (let n = 0; n < 5; n++) device.log(`${LINE}${n}`);
    device.overwrite(4);
    await until('the record after the gap', () => t.records.length === 3);
    expect(t.records.slice(1).map((r) => r.text)).toEqual([`${LINE}3`, `${LINE}4`]);
    expect(await lost(t.metrics)).toBe(3);
    expect(await sourceErrors(t.metrics)).toEqual({ records_lost: 1 });
  });

  it('counts the records overwritten while it was stopped, from the checkpoint, and hands over none twice', async () => {
    const device = new StandInKmsg();
    device.log(`${LINE}a`);
    const first = await tail({ open: device.open, bootTime: () => bootTime, now: () => bootTime });
    await until('the first record', () => first.records.length === 1);
    await first.source.stop();
    for (let n = 0; n < 4; n++) device.log(`${LINE}${n}`);
    device.overwrite(3);
    const second = await tail({
      checkpoints: first.checkpoints,
      open: device.open,
      bootTime: () => bootTime,
      now: () => bootTime,
    });
    await until('the records kept', () => second.records.length === 2);
    expect(second.records.map((r) => r.text)).toEqual([`${LINE}2`, `${LINE}3`]);
    expect(await lost(second.metrics)).toBe(2);
  });

  it('reads a record longer than its buffer', async () => {
    const device = new StandInKmsg();
    const long = `${LINE}${'x'.repeat(40_000)}`;
    device.log(long);
    const t = await tail({ open: device.open, bootTime: () => bootTime, now: () => bootTime });
    await until('the long record', () => t.records.length === 1);
    expect(t.records[0]!.text).toBe(long);
  });

  it('waits for a device that cannot be opened yet, saying why, and reads once it can', async () => {
    const device = new StandInKmsg();
    device.log(LINE);
    let allowed = false;
    const t = await tail({
      open: () => {
        if (!allowed) throw Object.assign(new Error('EPERM'), { code: 'EPERM' });
        return device.open();
      },
      bootTime: () => bootTime,
      now: () => bootTime,
      // Tried again in a tenth of a second, not 2 s.
      retryMs: 100,
    });
    await until('the problem', () => t.source.problem()?.includes('CAP_SYSLOG') === true);
    expect(t.records).toEqual([]);
    allowed = true;
    await until('the record', () => t.records.length === 1);
    expect(t.source.problem()).toBeNull();
  });

  it('tells unread records apart by a look of its own at the device', async () => {
    const device = new StandInKmsg();
    let handled = 0;
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const log = pino({ level: 'silent' });
    const source = new KmsgSource({
      path: '/dev/kmsg',
      expirationMs: 60_000,
      host: 'node-a',
      log,
      metrics: new Metrics(),
      checkpoints: new CheckpointDirectory(join(root, `case-${++caseCount}`), log),
      open: device.open,
      bootTime: () => bootTime,
      now: () => bootTime,
    });
    running.push(source);
    device.log(LINE);
    // The handler holds the first batch: the reader cannot take the next record, the look sees it.
    void source.run(async () => {
      handled++;
      await held;
    });
    await until('the first batch', () => handled === 1);
    expect(await source.progress()).toEqual({ taken: 1, unread: false });
    device.log(LINE);
    expect(await source.progress()).toEqual({ taken: 1, unread: true });
    release();
    await until('the second batch', () => handled === 2);
    expect(await source.progress()).toEqual({ taken: 2, unread: false });
  });
});
