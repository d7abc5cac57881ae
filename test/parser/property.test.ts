/**
 * Properties over hostile input: the parser never throws, and every drop it emits carries only
 * validated values (they end up in Kubernetes Event messages).
 */

import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp } from '../../agent/parser/address.ts';
import {
  createLineParser,
  createParser,
  INVALID_REASONS,
  type ParseResult,
} from '../../agent/parser/parse.ts';
import type { PacketDrop } from '../../agent/types.ts';
import { ICMP_ECHO, ICMP_UNREACHABLE, ICMP6, kernLine, TCP4, TCP6, UDP4 } from './samples.ts';

const RUNS = 20_000;
const NOW = Date.UTC(2026, 3, 6, 12);
const options = { prefix: 'calico-packet', timeLayout: null, now: () => NOW };
const parse = createParser(options);
const parseWithLayout = createParser({ ...options, timeLayout: '2006-01-02T15:04:05.000000-07:00' });
const parseLine = createLineParser(options);

const SAFE_NAME = /^[A-Za-z0-9_.@+-]{0,15}$/;
const SAFE_HOST = /^[A-Za-z0-9._:-]{0,253}$/;

function isPort(value: number | null): boolean {
  return value === null || (Number.isInteger(value) && value >= 0 && value <= 65_535);
}

function isByte(value: number | null): boolean {
  return value === null || (Number.isInteger(value) && value >= 0 && value <= 255);
}

/** The first rule a drop breaks, or null: every value as strictly as the kernel could have printed it. */
function violation(drop: PacketDrop): string | null {
  const rules: [string, boolean][] = [
    ['src is an address of ipVersion', isIP(drop.src) === drop.ipVersion],
    ['dst is an address of ipVersion', isIP(drop.dst) === drop.ipVersion],
    ['src is canonical', canonicalIp(drop.src) === drop.src],
    ['dst is canonical', canonicalIp(drop.dst) === drop.dst],
    ['ports are 0-65535 or null', isPort(drop.srcPort) && isPort(drop.dstPort)],
    ['ports come in pairs', (drop.srcPort === null) === (drop.dstPort === null)],
    ['ttl and ICMP fields are bytes', isByte(drop.ttl) && isByte(drop.icmpType) && isByte(drop.icmpCode)],
    ['length is a count', drop.length === null || (Number.isInteger(drop.length) && drop.length >= 0)],
    ['proto is a name or number', /^[A-Za-z0-9]{1,16}$/.test(drop.proto)],
    ['interfaces are safe names', SAFE_NAME.test(drop.in) && SAFE_NAME.test(drop.out)],
    ['host is a safe name', SAFE_HOST.test(drop.host)],
    ['mac is hex pairs', drop.mac === null || /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$/.test(drop.mac)],
    ['time is a date', Number.isFinite(drop.time) && Math.abs(drop.time) <= 8.64e15],
  ];
  return rules.find(([, holds]) => !holds)?.[0] ?? null;
}

/** Throws (failing the property) on a drop with an invalid value or an invalid report. */
function checkResult(result: ParseResult): void {
  const problem =
    result.kind === 'drop'
      ? violation(result.drop)
      : result.kind === 'invalid' &&
          (!INVALID_REASONS.includes(result.reason) || !/^[\x20-\x7e]*$/.test(result.detail))
        ? 'invalid report is not a known reason with a printable detail'
        : null;
  if (problem !== null) throw new Error(`${problem}: ${JSON.stringify(result)}`);
}

/** Every way the parser can be handed a text: file line, span of a larger text, journal message. */
function parseEveryWay(text: string): void {
  checkResult(parse({ text, time: null, host: null }));
  checkResult(parseWithLayout({ text, time: null, host: null }));
  checkResult(parse({ text, time: NOW, host: 'node-1' }));
  const framed = `x\n${text}\ny`;
  checkResult(parseLine(framed, 2, 2 + text.length));
}

const validLines = [TCP4, UDP4, ICMP_ECHO, ICMP_UNREACHABLE, TCP6, ICMP6].flatMap((fields) => [
  kernLine(fields),
  `Apr  5 20:41:42 node-1 kernel: calico-packet: ${fields}`,
  `Sun 2026-04-05 20:41:42 CEST node-1 kernel: calico-packet:${fields}`,
  `calico-packet ${fields}`,
]);

/** Characters that matter to the parser, so mutations hit its decisions rather than only noise. */
const interesting = fc.constantFrom(
  ' ',
  '=',
  ':',
  '.',
  '[',
  ']',
  '\n',
  '\r',
  '\t',
  '\u0000',
  '\ufffd',
  '0',
  '9',
  'f',
  'SRC=',
  'DST=',
  'SPT=',
  'DPT=',
  'PROTO=',
  'IN=',
  'MAC=',
  'calico-packet',
  '::',
  '256',
  '65536',
  '-1',
);

type Mutation = { at: number; kind: 'insert' | 'delete' | 'replace'; text: string; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('insert', 'delete', 'replace'),
  text: fc.oneof(interesting, fc.string({ maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 3 })),
  length: fc.integer({ min: 1, max: 12 }),
});

function mutate(line: string, mutations: readonly Mutation[]): string {
  let text = line;
  for (const { at, kind, text: piece, length } of mutations) {
    const i = at % (text.length + 1);
    if (kind === 'insert') text = text.slice(0, i) + piece + text.slice(i);
    else if (kind === 'delete') text = text.slice(0, i) + text.slice(i + length);
    else text = text.slice(0, i) + piece + text.slice(i + piece.length);
  }
  return text;
}

describe('parser properties', () => {
  it('never throws on random strings', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 })),
        (text) => parseEveryWay(text),
      ),
      { numRuns: RUNS },
    );
  });

  it('never throws on random bytes decoded as UTF-8, behind a valid header and prefix', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, withPrefix) => {
        const text = Buffer.from(bytes).toString('utf8');
        parseEveryWay(withPrefix ? `2026-04-05T20:41:42Z node-1 kernel: calico-packet: ${text}` : text);
      }),
      { numRuns: RUNS },
    );
  });

  it('never emits an invalid value from mutated valid lines', () => {
    const kinds = { drop: 0, invalid: 0, skip: 0 };
    fc.assert(
      fc.property(
        fc.constantFrom(...validLines),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (line, changes) => {
          const text = mutate(line, changes);
          parseEveryWay(text);
          kinds[parse({ text, time: null, host: null }).kind]++;
        },
      ),
      { numRuns: RUNS },
    );
    // The mutations must reach every outcome, or the property would hold vacuously.
    expect(kinds.drop).toBeGreaterThan(RUNS / 10);
    expect(kinds.invalid).toBeGreaterThan(RUNS / 10);
    expect(kinds.skip).toBeGreaterThan(0);
  });

  it('reads back exactly what a kernel line carries', () => {
    const port = fc.integer({ min: 0, max: 65_535 });
    fc.assert(
      fc.property(
        fc.oneof(fc.tuple(fc.ipV4(), fc.ipV4()), fc.tuple(fc.ipV6(), fc.ipV6())),
        port,
        port,
        fc.constantFrom('TCP', 'UDP', 'UDPLITE', 'SCTP'),
        fc.integer({ min: 0, max: 255 }),
        ([src, dst], srcPort, dstPort, proto, ttl) => {
          const fields = `IN=eth0 OUT= SRC=${src} DST=${dst} LEN=60 TTL=${ttl} ID=1 DF PROTO=${proto} SPT=${srcPort} DPT=${dstPort} LEN=40`;
          const result = parse({ text: kernLine(fields), time: null, host: null });
          expect(result).toMatchObject({
            kind: 'drop',
            drop: { src: canonicalIp(src), dst: canonicalIp(dst), proto, srcPort, dstPort, ttl, length: 60 },
          });
        },
      ),
      { numRuns: 5000 },
    );
  });
});
