import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  kernelLogRecord,
  kmsgSequence,
  parseKmsgRecord,
  unescapeKmsg,
} from '../../agent/sources/kmsg-record.ts';
import { kmsgEscaped } from '../support/kmsg.ts';

// Records as this machine's kernel (6.18) returns them from read(2) on /dev/kmsg.
const LOG_LINE =
  'calico-packet: IN=cali6e7bb88b982 OUT=eth0 SRC=10.4.0.7 DST=10.4.0.16 LEN=60 PROTO=TCP SPT=40000 DPT=12865 SYN ';
const WITH_DICTIONARY =
  '6,251,122417,-;pci_bus 0000:00: resource 8 [io  0x0d00-0xffff window]\n SUBSYSTEM=pci_bus\n DEVICE=+pci_bus:0000:00\n';

describe('kmsg records', () => {
  it('takes a kernel LOG record apart: facility, level, sequence, time since boot, message', () => {
    const parsed = parseKmsgRecord(`4,9001,47333898610,-;${LOG_LINE}\n`);
    expect(parsed).toEqual({
      kind: 'record',
      record: {
        facility: 0,
        level: 4,
        sequence: 9001,
        timestampUs: 47333898610,
        flag: '-',
        message: LOG_LINE,
        dictionary: new Map(),
      },
    });
  });

  it('keeps the dictionary lines out of the message', () => {
    const parsed = parseKmsgRecord(WITH_DICTIONARY);
    expect(parsed.kind === 'record' && parsed.record.message).toBe(
      'pci_bus 0000:00: resource 8 [io  0x0d00-0xffff window]',
    );
    expect(parsed.kind === 'record' && [...parsed.record.dictionary]).toEqual([
      ['SUBSYSTEM', 'pci_bus'],
      ['DEVICE', '+pci_bus:0000:00'],
    ]);
  });

  it('reads the facility a process that wrote to /dev/kmsg got (user, 1) and a syslog daemon (5)', () => {
    const user = parseKmsgRecord(`12,5,1,-;${LOG_LINE}\n`);
    const journald = parseKmsgRecord('46,427,47333898610,-;systemd-journald[20726]: Received SIGTERM.\n');
    expect(user.kind === 'record' && [user.record.facility, user.record.level]).toEqual([1, 4]);
    expect(journald.kind === 'record' && [journald.record.facility, journald.record.level]).toEqual([5, 6]);
  });

  it('accepts header fields newer kernels add after the flag (caller=)', () => {
    const parsed = parseKmsgRecord(`6,12,345,-,caller=T1;${LOG_LINE}\n`);
    expect(parsed.kind === 'record' && parsed.record.sequence).toBe(12);
  });

  it('turns escaped bytes back, multi-byte characters included', () => {
    expect(unescapeKmsg('a\\x09b\\x5cc')).toBe('a\tb\\c');
    expect(unescapeKmsg('caf\\xc3\\xa9')).toBe('café');
    // Not an escape: left as it is.
    expect(unescapeKmsg('\\xZZ \\x4')).toBe('\\xZZ \\x4');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const wellFormed = Buffer.from(text, 'utf8').toString('utf8');
        expect(unescapeKmsg(kmsgEscaped(Buffer.from(wellFormed, 'utf8')))).toBe(wellFormed);
      }),
      { numRuns: 2000 },
    );
  });

  it('names what is wrong with a record that is not one', () => {
    const reasons = [
      'no semicolon at all\n',
      '6,1,2;too few fields\n',
      'x,1,2,-;message\n',
      '6,-1,2,-;message\n',
      '6,1,2.5,-;message\n',
      '6,1,2,?;message\n',
      '6,1,2,-;message\nno leading blank\n',
      '6,99999999999999999999,2,-;message\n',
    ].map((text) => {
      const parsed = parseKmsgRecord(text);
      return parsed.kind === 'malformed' ? parsed.reason : 'record';
    });
    expect(reasons).toEqual([
      'no_header',
      'no_header',
      'bad_priority',
      'bad_sequence',
      'bad_timestamp',
      'bad_flag',
      'bad_dictionary',
      'bad_sequence',
    ]);
  });

  it('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const parsed = parseKmsgRecord(text);
        expect(['record', 'malformed']).toContain(parsed.kind);
      }),
      { numRuns: 5000 },
    );
  });

  it('reads the sequence number from the header alone', () => {
    expect(kmsgSequence(WITH_DICTIONARY)).toBe(251);
    expect(kmsgSequence('garbage')).toBeNull();
  });

  it('hands the parser only the kernel own records, dated from the boot time', () => {
    const parsed = parseKmsgRecord(`4,9001,2500000,-;${LOG_LINE}\n`);
    const user = parseKmsgRecord(`12,9002,2500000,-;${LOG_LINE}\n`);
    if (parsed.kind !== 'record' || user.kind !== 'record') throw new Error('records expected');
    const boot = Date.UTC(2026, 11, 5, 8);
    expect(kernelLogRecord(parsed.record, boot, 'node-a')).toEqual({
      text: LOG_LINE,
      time: boot + 2500,
      host: 'node-a',
    });
    expect(kernelLogRecord(user.record, boot, 'node-a')).toBeNull();
  });
});
