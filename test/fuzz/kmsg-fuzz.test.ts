/**
 * Fuzz run of the /dev/kmsg record reader: records as the kernel formats them (its escaping, dictionary
 * lines, kernel and user-space facilities) around realistic LOG lines, damaged. Nothing may throw; a record
 * that parses must hold only what a record can (a facility and level in range, a message without a
 * newline); only the kernel's own facility may reach the parser, and what the parser makes of it must be a
 * valid drop, a skip or a known invalid reason; an undamaged record must come back exactly.
 */

import { describe, expect, it } from 'vitest';
import { createParser } from '../../agent/parser/parse.ts';
import { KERNEL_FACILITY, kernelLogRecord, parseKmsgRecord } from '../../agent/sources/kmsg-record.ts';
import { kmsgEscaped } from '../support/kmsg.ts';
import { fuzzSeed, kernelLine, mutate, PREFIX, Random } from './generators.ts';
import { resultViolation } from './invariants.ts';

const SEED = fuzzSeed();
const RECORDS = 100_000;
const MAX_MUTATIONS = 3;
const HUGE_CHANCE = 0.005;
const BOOT_TIME = Date.UTC(2026, 11, 5, 8);
const DICTIONARIES = ['', ' SUBSYSTEM=net\n DEVICE=n3\n', ' SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n'];

interface Generated {
  record: string;
  message: string;
  facility: number;
}

function generate(rng: Random, sequence: number): Generated {
  const message = kernelLine(rng).message;
  // Mostly the kernel's own; sometimes what a process wrote (user, 1) or a daemon (daemon 3, syslog 5).
  const facility = rng.chance(0.8) ? KERNEL_FACILITY : rng.pick([1, 3, 5]);
  const priority = facility * 8 + rng.below(8);
  const flag = rng.pick(['-', '-', '-', 'c', '+']);
  const caller = rng.chance(0.2) ? `,caller=T${rng.below(5000)}` : '';
  const record = `${priority},${sequence},${rng.below(2 ** 40)},${flag}${caller};${kmsgEscaped(Buffer.from(message, 'utf8'))}\n${rng.pick(DICTIONARIES)}`;
  return { record, message, facility };
}

/** The first rule a parsed record breaks, or null. */
function recordViolation(record: ReturnType<typeof parseKmsgRecord>): string | null {
  if (record.kind === 'malformed') return null;
  const { facility, level, sequence, timestampUs, message } = record.record;
  const rules: [string, boolean][] = [
    ['facility is a whole number', Number.isSafeInteger(facility) && facility >= 0],
    ['level is 0-7', Number.isInteger(level) && level >= 0 && level <= 7],
    [
      'sequence and time are whole numbers',
      Number.isSafeInteger(sequence) && Number.isSafeInteger(timestampUs),
    ],
    ['the message is one line', !message.includes('\n')],
  ];
  return rules.find(([, holds]) => !holds)?.[0] ?? null;
}

describe(`kmsg record fuzz (FUZZ_SEED=${SEED})`, () => {
  it(`takes ${RECORDS.toLocaleString('en')} records apart, half of them damaged, without a wrong result`, () => {
    const rng = new Random(SEED);
    const parse = createParser({ prefix: PREFIX });
    const tally = { exact: 0, malformed: 0, drops: 0, handedOver: 0, untrusted: 0 };
    for (let n = 0; n < RECORDS; n++) {
      const generated = generate(rng, n);
      const damaged = rng.chance(0.5);
      const text = damaged
        ? mutate(rng, Buffer.from(generated.record, 'latin1'), MAX_MUTATIONS, HUGE_CHANCE).toString('latin1')
        : generated.record;
      const parsed = parseKmsgRecord(text);
      const violation = recordViolation(parsed);
      if (violation !== null) throw new Error(`${violation}: ${JSON.stringify(text)}`);
      if (parsed.kind === 'malformed') {
        tally.malformed++;
        if (!damaged)
          throw new Error(`an undamaged record is malformed (${parsed.reason}): ${JSON.stringify(text)}`);
        continue;
      }
      if (!damaged) {
        expect(parsed.record.message).toBe(generated.message);
        expect(parsed.record.facility).toBe(generated.facility);
        tally.exact++;
      }
      const record = kernelLogRecord(parsed.record, BOOT_TIME, 'node-a');
      if (record === null) {
        if (parsed.record.facility === KERNEL_FACILITY) throw new Error('a kernel record was refused');
        tally.untrusted++;
        continue;
      }
      if (parsed.record.facility !== KERNEL_FACILITY)
        throw new Error('a user-space record reached the parser');
      tally.handedOver++;
      const result = parse(record);
      const resultProblem = resultViolation(result);
      if (resultProblem !== null) throw new Error(`${resultProblem}: ${JSON.stringify(text)}`);
      if (result.kind === 'drop') tally.drops++;
    }
    console.log(`kmsg fuzz (FUZZ_SEED=${SEED}): ${JSON.stringify(tally)}`);
    // The run reached every outcome: undamaged records, malformed ones, refused and parsed ones.
    expect(tally.exact).toBeGreaterThan(RECORDS / 4);
    expect(tally.malformed).toBeGreaterThan(0);
    expect(tally.untrusted).toBeGreaterThan(0);
    expect(tally.drops).toBeGreaterThan(RECORDS / 10);
  });
});
