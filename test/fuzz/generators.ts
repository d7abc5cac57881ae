/**
 * Seeded generation and mutation of hostile input for the fuzz tests: realistic kernel log lines (every
 * shape and timestamp style the parser must know) and journal export streams, then damaged byte by byte
 * and structurally. Seeded, so that a failure reported with its seed replays exactly (FUZZ_SEED=...).
 */

import type { ExportEntry } from '../../agent/sources/journal-export.ts';
import { ICMP_ECHO, ICMP_UNREACHABLE, ICMP6, TCP4, TCP6, UDP4 } from '../parser/samples.ts';
import { exportEntry, type JournalEntry } from '../support/journal.ts';

/** mulberry32: tiny, fast and good enough to drive mutations; not for anything secret. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  chance(probability: number): boolean {
    return this.next() / 0x1_0000_0000 < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  hex(digits: number): string {
    let text = '';
    for (let i = 0; i < digits; i++) text += '0123456789abcdef'[this.below(16)];
    return text;
  }

  bytes(length: number): Buffer {
    const bytes = Buffer.alloc(length);
    for (let i = 0; i < length; i++) bytes[i] = this.below(256);
    return bytes;
  }
}

/** FUZZ_SEED replays a run; otherwise every run explores new input, and reports its seed. */
export function fuzzSeed(): number {
  const fixed = process.env.FUZZ_SEED;
  return fixed !== undefined && fixed !== '' ? Number(fixed) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0;
}

// --- kernel log lines ---------------------------------------------------------------------------

export const PREFIX = 'calico-packet';

const pad2 = (n: number): string => String(n).padStart(2, '0');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

function ipv4(rng: Random): string {
  return rng.chance(0.7)
    ? `10.${rng.below(256)}.${rng.below(256)}.${rng.below(256)}`
    : `${rng.below(256)}.${rng.below(256)}.${rng.below(256)}.${rng.below(256)}`;
}

/** The kernel's own spelling: eight groups of four digits, leading zeros included. */
function ipv6(rng: Random): string {
  const groups = Array.from({ length: 8 }, () => (rng.chance(0.4) ? 0 : rng.below(0x10000)));
  if (rng.chance(0.5)) groups.splice(0, 3, 0xfd00, 0x10, 0x244);
  return groups.map((g) => g.toString(16).padStart(4, '0')).join(':');
}

function interfaceName(rng: Random): string {
  return rng.pick([`cali${rng.hex(11)}`, 'eth0', 'ens4', `veth${rng.hex(8)}`, 'br-x.10', 'lo', '']);
}

/** Link-layer header text: destination, source and ethertype bytes, or nothing on a device without one. */
function mac(rng: Random, ethertype: string): string {
  if (rng.chance(0.15)) return rng.chance(0.5) ? 'MAC= ' : '';
  const bytes = Array.from({ length: 12 }, () => rng.hex(2));
  return `MAC=${[...bytes, ethertype].join(':')} `;
}

const port = (rng: Random): number => (rng.chance(0.1) ? rng.pick([0, 65_535]) : rng.int(1, 65_535));

/** The fields after the prefix, as nf_log_syslog prints them for one packet. */
export function kernelFields(rng: Random): string {
  const inOut = `IN=${interfaceName(rng)} OUT=${interfaceName(rng)} `;
  const ttl = rng.below(256);
  switch (rng.below(9)) {
    case 0:
      return rng.pick([TCP4, UDP4, ICMP_ECHO, ICMP_UNREACHABLE, TCP6, ICMP6]);
    case 1:
    case 2:
      return `${inOut}${mac(rng, '08:00')}SRC=${ipv4(rng)} DST=${ipv4(rng)} LEN=${rng.int(40, 1500)} TOS=0x00 PREC=0x00 TTL=${ttl} ID=${rng.below(65_536)} DF PROTO=TCP SPT=${port(rng)} DPT=${port(rng)} WINDOW=${rng.below(65_536)} RES=0x00 SYN URGP=0`;
    case 3:
      // UDP repeats LEN=: the IP header's comes first and is the one kept.
      return `${inOut}${mac(rng, '08:00')}SRC=${ipv4(rng)} DST=${ipv4(rng)} LEN=${rng.int(28, 1500)} TOS=0x00 PREC=0x00 TTL=${ttl} ID=${rng.below(65_536)} PROTO=UDP SPT=${port(rng)} DPT=${port(rng)} LEN=${rng.int(8, 1480)}`;
    case 4:
      // ICMP echo repeats ID=: the IP header's, then the echo identifier.
      return `${inOut}${mac(rng, '08:00')}SRC=${ipv4(rng)} DST=${ipv4(rng)} LEN=84 TOS=0x00 PREC=0x00 TTL=${ttl} ID=${rng.below(65_536)} DF PROTO=ICMP TYPE=${rng.pick([0, 8])} CODE=0 ID=${rng.below(65_536)} SEQ=${rng.below(65_536)}`;
    case 5:
      return `${inOut}SRC=${ipv4(rng)} DST=${ipv4(rng)} LEN=88 TOS=0x00 PREC=0xC0 TTL=${ttl} ID=9 PROTO=ICMP TYPE=3 CODE=${rng.below(16)} [SRC=${ipv4(rng)} DST=${ipv4(rng)} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=UDP SPT=${port(rng)} DPT=${port(rng)} LEN=40 ] MARK=0x10000`;
    case 6:
      return `${inOut}${mac(rng, '86:dd')}SRC=${ipv6(rng)} DST=${ipv6(rng)} LEN=${rng.int(60, 1500)} TC=0 HOPLIMIT=${ttl} FLOWLBL=${rng.below(1 << 20)} PROTO=${rng.pick(['TCP', 'UDP', 'SCTP'])} SPT=${port(rng)} DPT=${port(rng)} WINDOW=64800 RES=0x00 SYN URGP=0`;
    case 7:
      return `${inOut}${mac(rng, '86:dd')}SRC=${ipv6(rng)} DST=${ipv6(rng)} LEN=104 TC=0 HOPLIMIT=${ttl} FLOWLBL=0 PROTO=ICMPv6 TYPE=${rng.pick([128, 129, 1, 135])} CODE=0 ID=${rng.below(65_536)} SEQ=1`;
    default:
      // Port-less protocols: IPsec by name, GRE and IP-in-IP by number (the kernel names no others), and
      // a fragment, whose ports are in another packet.
      return rng.chance(0.5)
        ? `${inOut}SRC=${ipv4(rng)} DST=${ipv4(rng)} LEN=120 TOS=0x00 PREC=0x00 TTL=${ttl} ID=77 PROTO=${rng.pick(['47', 'ESP', 'AH', '4'])}`
        : `${inOut}SRC=${ipv4(rng)} DST=${ipv4(rng)} LEN=1500 TOS=0x00 PREC=0x00 TTL=${ttl} ID=77 FRAG:185 PROTO=UDP`;
  }
}

/** The prefix as users configure it (with or without a space or colon), or text the parser must skip. */
function prefixed(rng: Random, fields: string): string {
  switch (rng.below(12)) {
    case 0:
      return `${PREFIX}:${fields}`;
    case 1:
      return `${PREFIX} ${fields}`;
    case 2:
      return `${PREFIX}s: ${fields}`;
    case 3:
      return rng.pick([
        'eth0: link becomes ready',
        'audit: type=1400 apparmor="DENIED"',
        `x${PREFIX}: ${fields}`,
      ]);
    default:
      return `${PREFIX}: ${fields}`;
  }
}

function clock(rng: Random): string {
  return `${pad2(rng.below(24))}:${pad2(rng.below(60))}:${pad2(rng.below(60))}`;
}

function fraction(rng: Random): string {
  return rng.chance(0.3)
    ? ''
    : `.${String(rng.below(1_000_000_000)).padStart(9, '0').slice(0, rng.int(1, 9))}`;
}

function offset(rng: Random, colon: boolean): string {
  if (rng.chance(0.3)) return 'Z';
  return `${rng.pick(['+', '-'])}${pad2(rng.below(15))}${colon ? ':' : ''}${pad2(rng.pick([0, 30, 45]))}`;
}

/** The timestamp styles of syslog daemons and journalctl (see agent/sources/syslog/timestamp.ts). */
function stamp(rng: Random): string {
  const date = `${rng.int(2020, 2030)}-${pad2(rng.int(1, 12))}-${pad2(rng.int(1, 28))}`;
  switch (rng.below(5)) {
    case 0:
      return `${date}T${clock(rng)}${fraction(rng)}${offset(rng, true)}`;
    case 1:
      return `${date}T${clock(rng)}${fraction(rng)}${offset(rng, false)}`;
    case 2:
      return `${rng.pick(WEEKDAYS)} ${date} ${clock(rng)} ${rng.pick(['CEST', 'UTC', 'PST'])}`;
    case 3:
      return `${rng.int(1_600_000_000, 1_900_000_000)}.${String(rng.below(1_000_000)).padStart(6, '0')}`;
    default: {
      const day = rng.int(1, 28);
      return `${rng.pick(MONTHS)} ${day < 10 && rng.chance(0.5) ? ` ${day}` : pad2(day)} ${clock(rng)}${fraction(rng)}`;
    }
  }
}

function syslogHeader(rng: Random): string {
  const host = rng.chance(0.1)
    ? ''
    : `${rng.pick(['node-1', 'gke-cluster-k8s-default-pool-d4371b02-9s00', 'ip-10-0-0-1.ec2.internal', '10.0.0.1'])} `;
  const uptime = rng.chance(0.5)
    ? `[${String(rng.below(100_000)).padStart(5, ' ')}.${String(rng.below(1_000_000)).padStart(6, '0')}] `
    : '';
  return `${stamp(rng)} ${host}kernel: ${uptime}`;
}

export interface GeneratedLine {
  /** A whole syslog-style line as a file holds it, without the newline. */
  line: string;
  /** The same packet as the journal's MESSAGE: no timestamp or host. */
  message: string;
}

export function kernelLine(rng: Random): GeneratedLine {
  const message = prefixed(rng, kernelFields(rng));
  return { line: `${syslogHeader(rng)}${message}`, message };
}

// --- mutations -----------------------------------------------------------------------------------

/** Text that matters to the parsers, so that mutations hit their decisions rather than only noise. */
export const PARSER_TOKENS: readonly string[] = [
  ' ',
  '=',
  ':',
  '.',
  '[',
  ']',
  '\n',
  '\r',
  '\t',
  '\0',
  '\u202e',
  '\u001b[31m',
  '\ufffd',
  'SRC=',
  'DST=',
  'SPT=',
  'DPT=',
  'PROTO=',
  'IN=',
  'OUT=',
  'MAC=',
  'TYPE=',
  'CODE=',
  'HOPLIMIT=',
  PREFIX,
  `${PREFIX}:`,
  '::',
  '::ffff:',
  '%eth0',
  '256',
  '65536',
  '-1',
  '99999999999',
  '0x10',
  '010',
];

const TOKENS: readonly Buffer[] = PARSER_TOKENS.map((token) => Buffer.from(token));

/** Byte sequences that are not UTF-8: a lone lead byte, a cut sequence, an encoded surrogate, overlongs. */
const INVALID_UTF8: readonly Buffer[] = [
  [0xff],
  [0xc3],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xc0, 0xaf],
  [0x80],
].map((bytes) => Buffer.from(bytes));

/** Where the kernel's `KEY=value` tokens are, so that mutations can duplicate or bloat them. */
function tokenAt(bytes: Buffer, rng: Random): { start: number; end: number } | null {
  const at = rng.below(bytes.length + 1);
  const equals = bytes.indexOf(0x3d, at);
  if (equals < 0) return null;
  const space = bytes.lastIndexOf(0x20, equals);
  const end = bytes.indexOf(0x20, equals);
  return { start: space + 1, end: end < 0 ? bytes.length : end };
}

const splice = (bytes: Buffer, at: number, remove: number, insert: Buffer): Buffer =>
  Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at + remove)]);

/** A run long enough to push a line or field over the limits now and then (16 KiB lines, 64 KiB fields). */
function hugeRun(rng: Random): Buffer {
  const length = rng.chance(0.3) ? rng.int(16 * 1024 - 64, 16 * 1024 + 64) : rng.int(1000, 70_000);
  return Buffer.alloc(length, rng.pick(['A', '0', ' ', 'é', '\0']));
}

/** One random damage: flip, insert, delete, truncate, duplicate a key, bloat a value, NULs, bad UTF-8. */
export function mutateOnce(rng: Random, bytes: Buffer, hugeChance: number): Buffer {
  const at = rng.below(bytes.length + 1);
  switch (rng.below(10)) {
    case 0: {
      if (bytes.length === 0) return bytes;
      const copy = Buffer.from(bytes);
      const i = Math.min(at, copy.length - 1);
      copy[i] = rng.chance(0.5) ? copy[i]! ^ (1 << rng.below(8)) : rng.below(256);
      return copy;
    }
    case 1:
    case 2:
      return splice(bytes, at, 0, rng.pick(TOKENS));
    case 3:
      return splice(bytes, at, rng.int(1, 12), Buffer.alloc(0));
    case 4:
      return bytes.subarray(0, at);
    case 5: {
      const token = tokenAt(bytes, rng);
      if (token === null) return bytes;
      return splice(
        bytes,
        rng.below(bytes.length + 1),
        0,
        Buffer.concat([bytes.subarray(token.start, token.end), Buffer.from(' ')]),
      );
    }
    case 6: {
      const token = tokenAt(bytes, rng);
      if (token === null) return bytes;
      const value = rng.chance(hugeChance) ? hugeRun(rng) : rng.bytes(rng.int(1, 8));
      const valueStart = bytes.indexOf(0x3d, token.start) + 1;
      return splice(bytes, valueStart, token.end - valueStart, value);
    }
    case 7:
      return splice(bytes, at, 0, Buffer.alloc(rng.int(1, 4)));
    case 8:
      return splice(bytes, at, rng.below(2), rng.pick(INVALID_UTF8));
    default:
      return rng.chance(hugeChance)
        ? splice(bytes, at, 0, hugeRun(rng))
        : splice(bytes, at, 0, rng.bytes(rng.int(1, 6)));
  }
}

/**
 * At least one mutation, so that every input counted as mutated is; mostly just one, so that many
 * inputs stay close enough to valid to reach the deeper checks.
 */
export function mutate(rng: Random, bytes: Buffer, maxMutations: number, hugeChance: number): Buffer {
  let mutated = bytes;
  const count = rng.chance(0.5) ? 1 : rng.int(2, maxMutations);
  for (let i = 0; i < count; i++) mutated = mutateOnce(rng, mutated, hugeChance);
  return mutated;
}

/** Random chunk boundaries: mostly small pieces, sometimes single bytes, sometimes large ones. */
export function randomChunks(rng: Random, bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  while (from < bytes.length) {
    const size = rng.chance(0.2) ? 1 : rng.chance(0.7) ? rng.int(1, 64) : rng.int(64, 8192);
    chunks.push(bytes.subarray(from, from + size));
    from += size;
  }
  return chunks;
}

/** The bytes cut at a few random points, for long inputs where many small chunks would only cost time. */
export function randomCuts(rng: Random, bytes: Buffer, cuts: number): Buffer[] {
  const points = Array.from({ length: cuts }, () => rng.below(bytes.length + 1)).sort((x, y) => x - y);
  return [0, ...points].map((from, i) => bytes.subarray(from, points[i] ?? bytes.length));
}

// --- journal export streams ----------------------------------------------------------------------

const T0_US = 1_775_414_502_123_456;
const U64 = 0xffff_ffff_ffff_ffffn;

export interface GeneratedEntry {
  bytes: Buffer;
  /** What ExportReader must make of the entry when it is intact. */
  expected: ExportEntry;
  cursor: string;
}

/** Mostly real kernel entries; some forged by a local process that claims SYSLOG_IDENTIFIER=kernel. */
export function journalEntry(rng: Random, n: number): GeneratedEntry {
  const { message: text } = kernelLine(rng);
  // Binary form (length-prefixed) for messages with a newline or invalid UTF-8, as journalctl writes them.
  const message = rng.chance(0.25)
    ? Buffer.concat([
        Buffer.from(text),
        rng.pick([Buffer.from('\n'), Buffer.from([0xff, 0x0a]), Buffer.from('\n\n')]),
      ])
    : text;
  const transport = rng.chance(0.8) ? 'kernel' : rng.pick(['syslog', 'stdout', 'journal']);
  // Sometimes what a process wrote to /dev/kmsg: the kernel's transport, a user-space facility.
  const facility = rng.chance(0.9) ? 0 : rng.pick([1, 3, 23]);
  const hostname = rng.chance(0.9) ? 'node-a' : rng.pick(['evil\nhost', 'node b', 'x'.repeat(300)]);
  const realtimeUs = T0_US + n;
  const cursor = `s=${rng.hex(32)};i=${n.toString(16)};b=${rng.hex(32)};m=${rng.hex(6)};t=${realtimeUs.toString(16)};x=${rng.hex(16)}`;
  const fields: Record<string, string | Buffer> = { __CURSOR: cursor };
  if (rng.chance(0.3)) fields.BINARY_BLOB = rng.bytes(rng.int(0, 40));
  const entry: JournalEntry = {
    message,
    transport,
    hostname,
    realtimeUs,
    identifier: 'kernel',
    facility,
    fields,
  };
  return {
    bytes: exportEntry(entry),
    expected: {
      realtimeUs,
      hostname,
      transport,
      facility,
      message: typeof message === 'string' ? message : message.toString('utf8'),
    },
    cursor,
  };
}

export interface GeneratedStream {
  bytes: Buffer;
  entries: GeneratedEntry[];
}

/**
 * Streams of generated entries. Generating an entry costs more than reading it, so entries are drawn
 * from a pool that fresh ones keep replacing: the mutations, not the entries, are what must be new.
 */
export class JournalStreams {
  private readonly rng: Random;
  private readonly poolSize: number;
  private readonly freshChance: number;
  private readonly pool: GeneratedEntry[] = [];
  private generated = 0;

  constructor(rng: Random, poolSize: number, freshChance: number) {
    this.rng = rng;
    this.poolSize = poolSize;
    this.freshChance = freshChance;
  }

  next(count: number): GeneratedStream {
    const entries = Array.from({ length: count }, () => this.entry());
    return { bytes: Buffer.concat(entries.map((entry) => entry.bytes)), entries };
  }

  private entry(): GeneratedEntry {
    const full = this.pool.length === this.poolSize;
    if (full && !this.rng.chance(this.freshChance)) return this.rng.pick(this.pool);
    const entry = journalEntry(this.rng, this.generated++);
    if (full) this.pool[this.rng.below(this.poolSize)] = entry;
    else this.pool.push(entry);
    return entry;
  }
}

/**
 * Field lines under the 64 KiB field cap that together near or pass the 256 KiB entry cap, sometimes
 * followed by one over the field cap, so that both caps fall within one value.
 */
function bigFields(rng: Random): Buffer {
  const field = Buffer.concat([
    Buffer.from('BIG='),
    Buffer.alloc(rng.int(50_000, 65_000), 'b'),
    Buffer.from('\n'),
  ]);
  const fields = Array.from({ length: rng.int(3, 6) }, () => field);
  if (rng.chance(0.5))
    fields.push(Buffer.concat([Buffer.from('HUGE='), Buffer.alloc(70_000, 'h'), Buffer.from('\n')]));
  return Buffer.concat(fields);
}

/** Where field lines start: after a newline that does not end a binary length or value. */
function lineStartAt(bytes: Buffer, rng: Random): number {
  const newline = bytes.indexOf(0x0a, rng.below(bytes.length + 1));
  return newline < 0 ? bytes.length : newline + 1;
}

/**
 * Damage that knows the export format: a field line copied elsewhere (duplicate keys), a binary length
 * overwritten (too big, off by a little, random), an entry separator added or removed, a field bloated
 * past 16 KiB or past the 64 KiB field cap, otherwise one of the byte-level mutations.
 */
export function mutateStream(rng: Random, bytes: Buffer, hugeChance: number): Buffer {
  switch (rng.below(6)) {
    case 0: {
      const start = lineStartAt(bytes, rng);
      const end = bytes.indexOf(0x0a, start);
      if (end < 0) return bytes;
      return splice(bytes, lineStartAt(bytes, rng), 0, bytes.subarray(start, end + 1));
    }
    case 1: {
      const name = bytes.indexOf('MESSAGE\n', rng.below(bytes.length + 1));
      const at = name + 'MESSAGE\n'.length;
      if (name < 0 || at + 8 > bytes.length) return mutateOnce(rng, bytes, hugeChance);
      const length = Buffer.alloc(8);
      const choice = rng.below(3);
      if (choice === 0) length.writeBigUInt64LE(BigInt(rng.int(0, 70_000)));
      else if (choice === 1)
        length.writeBigUInt64LE((bytes.readBigUInt64LE(at) + BigInt(rng.int(-3, 3))) & U64);
      else rng.bytes(8).copy(length);
      return splice(bytes, at, 8, length);
    }
    case 2:
      return splice(bytes, lineStartAt(bytes, rng), 0, Buffer.from('\n'));
    case 3: {
      const separator = bytes.indexOf('\n\n', rng.below(bytes.length + 1));
      return separator < 0 ? bytes : splice(bytes, separator, 1, Buffer.alloc(0));
    }
    case 4: {
      if (!rng.chance(hugeChance * 5)) return mutateOnce(rng, bytes, hugeChance);
      if (rng.chance(0.2)) return splice(bytes, lineStartAt(bytes, rng), 0, bigFields(rng));
      const value = bytes.indexOf('MESSAGE=', rng.below(bytes.length + 1));
      return value < 0 ? bytes : splice(bytes, value + 'MESSAGE='.length, 0, hugeRun(rng));
    }
    default:
      return mutateOnce(rng, bytes, hugeChance);
  }
}
