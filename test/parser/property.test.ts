/**
 * Properties over hostile input: the parser never throws, and every drop it emits carries only
 * validated values (they end up in Kubernetes Event messages).
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp } from '../../agent/net.ts';
import { createParser, type ParseResult } from '../../agent/parser/parse.ts';
import { SyslogReader } from '../../agent/sources/syslog/record.ts';
import { PARSER_TOKENS } from '../fuzz/generators.ts';
import { resultViolation } from '../fuzz/invariants.ts';
import { fileLineParser, ICMP_ECHO, ICMP_UNREACHABLE, ICMP6, kernLine, TCP4, TCP6, UDP4 } from './samples.ts';

const RUNS = 20_000;
const NOW = Date.UTC(2026, 3, 6, 12);
const options = { prefix: 'calico-packet', timeLayout: null, now: () => NOW };
const parse = createParser(options);
const fileLine = fileLineParser(options);
const fileLineWithLayout = fileLineParser({ ...options, timeLayout: '2006-01-02T15:04:05.000000-07:00' });
const syslog = new SyslogReader(options);

/** Throws (failing the property) on a drop with an invalid value or an invalid report. */
function checkResult(result: ParseResult): void {
  const problem = resultViolation(result);
  if (problem !== null) throw new Error(`${problem}: ${JSON.stringify(result)}`);
}

/** Every way the parser can be handed a text: file line, span of a larger text, journal message. */
function parseEveryWay(text: string): void {
  checkResult(fileLine(text));
  checkResult(fileLineWithLayout(text));
  checkResult(parse({ text, time: NOW, host: 'node-1' }));
  const framed = `x\n${text}\ny`;
  checkResult(parse(syslog.record(framed, 2, 2 + text.length)));
}

const validLines = [TCP4, UDP4, ICMP_ECHO, ICMP_UNREACHABLE, TCP6, ICMP6].flatMap((fields) => [
  kernLine(fields),
  `Apr  5 20:41:42 node-1 kernel: calico-packet: ${fields}`,
  `Sun 2026-04-05 20:41:42 CEST node-1 kernel: calico-packet:${fields}`,
  `calico-packet ${fields}`,
]);

const interesting = fc.constantFrom(...PARSER_TOKENS);

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
          kinds[fileLine(text).kind]++;
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
          const result = fileLine(kernLine(fields));
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
