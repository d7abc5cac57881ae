import { describe, expect, it } from 'vitest';
import { createParser } from '../../../agent/parser/parse.ts';
import { CensusTally, logPrefixAt, printable, topCounts } from '../../../agent/tools/doctor/census.ts';
import { kernLine, TCP4, UDP4 } from '../../parser/samples.ts';

const at = (text: string, from = 0) => logPrefixAt(text, from, text.length);

describe('logPrefixAt', () => {
  it('names the word before IN= ... OUT=, without trailing colons', () => {
    expect(at(`calico-drop: ${TCP4}`)).toBe('calico-drop');
    expect(at(`calico-packet ${TCP4}`)).toBe('calico-packet');
    expect(at(`my-drop:: ${TCP4}`)).toBe('my-drop');
  });

  it('finds a prefix glued to IN= (a --log-prefix without the trailing space)', () => {
    expect(at(`DROP:${TCP4}`)).toBe('DROP');
    expect(at(`drop${TCP4}`)).toBe('drop');
  });

  it("reads a syslog line after its header, past the kernel's uptime stamp", () => {
    const line = kernLine(TCP4, 'calico-drop:');
    const from = line.indexOf('kernel:');
    expect(at(line, from)).toBe('calico-drop');
  });

  it("gives '' for LOG output without a prefix", () => {
    expect(at(TCP4)).toBe('');
    expect(at(`kernel: ${TCP4}`)).toBe('');
    expect(at(`kernel: [12345.678901] ${TCP4}`)).toBe('');
  });

  it('gives null for lines that are no LOG output', () => {
    expect(at('eth0: renamed from tmp3f1c2')).toBeNull();
    expect(at('calico-drop: IN=eth0 with no out')).toBeNull();
    expect(at('OUT=eth0 IN=eth1')).toBeNull();
  });

  it("skips a bridge's PHYSIN= and keys that merely end in IN", () => {
    expect(at('LOGIN=root OUT=tty1')).toBeNull();
    expect(at('br-drop: IN=br0 OUT=br0 PHYSIN=veth1 PHYSOUT=veth2 SRC=10.0.0.1')).toBe('br-drop');
  });

  it('gives null for a prefix with control or non-ASCII characters, or absurdly long', () => {
    expect(at(`drop\u001b[31m: ${TCP4}`)).toBeNull();
    expect(at(`dröp: ${TCP4}`)).toBeNull();
    expect(at(`${'x'.repeat(200)}: ${TCP4}`)).toBeNull();
  });
});

describe('printable', () => {
  it('keeps printable ASCII, replaces the rest, and cuts long text', () => {
    expect(printable('a\u001b[2Jb\nc\u00e9')).toBe('a?[2Jb?c?');
    expect(printable('x'.repeat(200), 10)).toBe(`${'x'.repeat(10)}...`);
  });
});

describe('topCounts', () => {
  it('orders by count, then key, and keeps the first ones', () => {
    const counts = new Map([
      ['b', 2],
      ['a', 2],
      ['c', 5],
      ['d', 1],
    ]);
    expect(topCounts(counts, 3)).toEqual([
      ['c', 5],
      ['a', 2],
      ['b', 2],
    ]);
  });
});

describe('CensusTally', () => {
  const parse = createParser({ prefix: 'calico-packet' });
  function tally(messages: readonly string[]) {
    const census = new CensusTally();
    for (const text of messages) {
      const record = { text, time: Date.now(), host: 'node-a' };
      census.add(parse(record), record);
    }
    return census.census();
  }

  it('counts entries, prefixed lines, drops and their most frequent addresses', () => {
    const census = tally([
      `calico-packet: ${TCP4}`,
      `calico-packet: ${TCP4}`,
      `calico-packet: ${UDP4}`,
      'eth0: link becomes ready',
    ]);
    expect(census).toMatchObject({ entries: 4, prefixed: 3, drops: 3, otherPrefixes: [], invalid: [] });
    // TCP4 is 10.4.0.4 -> 10.4.1.6, UDP4 10.4.1.6 -> 10.4.0.16.
    expect(census.addresses).toEqual([
      { ip: '10.4.1.6', count: 3 },
      { ip: '10.4.0.4', count: 2 },
      { ip: '10.4.0.16', count: 1 },
    ]);
  });

  it('lists the other LOG prefixes of the lines without the configured one', () => {
    const census = tally([
      `calico-drop: ${TCP4}`,
      `calico-drop: ${UDP4}`,
      `DROP:${TCP4}`,
      TCP4,
      `calico-packets: ${TCP4}`,
    ]);
    expect(census.prefixed).toBe(0);
    expect(census.otherPrefixes).toEqual([
      { prefix: 'calico-drop', count: 2 },
      { prefix: '', count: 1 },
      { prefix: 'DROP', count: 1 },
      { prefix: 'calico-packets', count: 1 },
    ]);
  });

  it('groups parse failures by reason with the escaped detail of the first as example', () => {
    const census = tally([
      'calico-packet: IN=eth0 OUT= SRC=nonsense DST=10.0.0.1 PROTO=TCP SPT=1 DPT=2',
      'calico-packet: IN=eth0 OUT= SRC=10.0.0.\u001b[31m1 DST=10.0.0.1 PROTO=TCP SPT=1 DPT=2',
      'calico-packet: IN=eth0 OUT= DST=10.0.0.1 PROTO=TCP',
      `calico-packet: ${TCP4}`,
    ]);
    expect(census).toMatchObject({ prefixed: 4, drops: 1 });
    expect(census.invalid).toEqual([
      { reason: 'bad_address', count: 2, example: 'SRC="nonsense"' },
      { reason: 'missing_field', count: 1, example: 'no SRC=' },
    ]);
  });

  it('never keeps a raw control character in an example', () => {
    const census = tally([
      'calico-packet: IN=eth0 OUT= SRC=10.0.0.\u001b[2J DST=10.0.0.1 PROTO=TCP SPT=1 DPT=2',
    ]);
    expect(census.invalid[0]?.example).toMatch(/^SRC=/);
    expect(census.invalid[0]?.example).toMatch(/^[\x20-\x7e]+$/);
  });
});
