import { describe, expect, it } from 'vitest';
import { createParser, NOT_PREFIXED, type ParseResult } from '../../agent/parser/parse.ts';
import { SyslogReader } from '../../agent/sources/syslog/record.ts';
import type { LogRecord, PacketDrop } from '../../agent/types.ts';
import {
  fileLineParser,
  ICMP_ECHO,
  ICMP_UNREACHABLE,
  ICMP6,
  KERN_LINE_TIME,
  kernLine,
  TCP4,
  TCP6,
  UDP4,
} from './samples.ts';

const NOW = Date.UTC(2026, 3, 6, 12, 0, 0);

function parserFor(prefix = 'calico-packet', timeLayout: string | null = null, now = NOW) {
  return fileLineParser({ prefix, timeLayout, now: () => now });
}

const defaultParser = parserFor();
const parse = createParser({ prefix: 'calico-packet' });

function fileLine(text: string, parser = defaultParser): ParseResult {
  return parser(text);
}

function dropOf(result: ParseResult): PacketDrop {
  if (result.kind !== 'drop') throw new Error(`expected a drop, got ${JSON.stringify(result)}`);
  return result.drop;
}

/** Local wall-clock time, as zone-less syslog stamps are read. */
function local(year: number, month: number, day: number, h: number, m: number, s: number, ms = 0): number {
  return new Date(year, month - 1, day, h, m, s, ms).getTime();
}

describe('the reference line', () => {
  it('gives every contract field', () => {
    const line = `Apr 05 20:41:42 gke-cluster-k8s-default-pool-d4371b02-9s00 kernel: calico-packet: ${TCP4}`;
    expect(dropOf(fileLine(line))).toEqual({
      time: local(2026, 4, 5, 20, 41, 42),
      host: 'gke-cluster-k8s-default-pool-d4371b02-9s00',
      prefix: 'calico-packet',
      src: '10.4.0.4',
      dst: '10.4.1.6',
      ipVersion: 4,
      proto: 'TCP',
      srcPort: 60353,
      dstPort: 12865,
      in: 'cali6e7bb88b982',
      out: 'eth0',
      mac: 'ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00',
      ttl: 63,
      length: 60,
      icmpType: null,
      icmpCode: null,
    });
  });
});

describe('timestamp styles', () => {
  const cases: [string, string, number][] = [
    ['traditional syslog', 'Apr 05 20:41:42 node-1', local(2026, 4, 5, 20, 41, 42)],
    ['traditional, space-padded day', 'Apr  5 20:41:42 node-1', local(2026, 4, 5, 20, 41, 42)],
    ['traditional, unpadded day', 'Apr 5 20:41:42 node-1', local(2026, 4, 5, 20, 41, 42)],
    ['journalctl short-precise', 'Apr 05 20:41:42.123456 node-1', local(2026, 4, 5, 20, 41, 42, 123)],
    [
      'RFC 3339 with offset',
      '2026-04-05T20:41:42.123456+02:00 node-1',
      Date.UTC(2026, 3, 5, 18, 41, 42, 123),
    ],
    ['RFC 3339 with Z', '2026-04-05T20:41:42Z node-1', Date.UTC(2026, 3, 5, 20, 41, 42)],
    ['RFC 3339, lowercase z', '2026-04-05t20:41:42.5z node-1', Date.UTC(2026, 3, 5, 20, 41, 42, 500)],
    [
      'RFC 3339, nanoseconds',
      '2026-04-05T20:41:42.987654321-05:30 node-1',
      Date.UTC(2026, 3, 6, 2, 11, 42, 987),
    ],
    [
      'RFC 3339, one fraction digit',
      '2026-04-05T20:41:42.1+00:00 node-1',
      Date.UTC(2026, 3, 5, 20, 41, 42, 100),
    ],
    ['journalctl short-iso', '2026-04-05T20:41:42+0200 node-1', Date.UTC(2026, 3, 5, 18, 41, 42)],
    [
      'journalctl short-iso-precise',
      '2026-04-05T20:41:42.123456+0200 node-1',
      Date.UTC(2026, 3, 5, 18, 41, 42, 123),
    ],
    ['ISO with a space, no zone', '2026-04-05 20:41:42 node-1', local(2026, 4, 5, 20, 41, 42)],
    ['journalctl short-full', 'Sun 2026-04-05 20:41:42 CEST node-1', Date.UTC(2026, 3, 5, 18, 41, 42)],
    ['journalctl short-full, UTC', 'Sun 2026-04-05 20:41:42 UTC node-1', Date.UTC(2026, 3, 5, 20, 41, 42)],
    [
      'journalctl short-full, numeric zone',
      'Sun 2026-04-05 20:41:42 +03 node-1',
      Date.UTC(2026, 3, 5, 17, 41, 42),
    ],
    ['journalctl short-unix', '1775421702.123456 node-1', Date.UTC(2026, 3, 5, 20, 41, 42, 123)],
  ];
  it.each(cases)('%s', (_name, header, time) => {
    const drop = dropOf(fileLine(`${header} kernel: calico-packet: ${TCP4}`));
    expect(drop.time).toBe(time);
    expect(drop.host).toBe('node-1');
  });

  it('reads each stamp as a fresh parser does, whatever stamps came before it', () => {
    // A parser reuses the date and clock of the stamp before when the next begins with the same text:
    // neighbours that share a prefix, differ after it, or stop short of it must still read correctly.
    const headers = [
      ...cases.map(([, header]) => header),
      'Apr 05 20:41:43 node-1',
      'Apr 05 20:41:42.9 node-1',
      'Apr 05 20:41:42x node-1',
      'Apr 05 20:41:4 node-1',
      'Apr 05 20:41:42 node-2',
      '2026-04-05T20:41:42.5+01:00 node-1',
      '2026-04-05T20:41:42 node-1',
      '2026-04-05T20:41:42+25:00 node-1',
      '2026-04-05T20:41:4 node-1',
      '2026-04-05T20:41:49Z node-1',
    ];
    const seen = (parser: ReturnType<typeof parserFor>, header: string) =>
      fileLine(`${header} kernel: calico-packet: ${TCP4}`, parser);
    const reused = parserFor();
    // Every header after every other one, and after itself.
    for (const before of headers) {
      for (const header of headers) {
        seen(reused, before);
        expect(seen(reused, header), `${header} after ${before}`).toEqual(seen(parserFor(), header));
      }
    }
  });

  it('reads short-full with a zone name it does not know as local time', () => {
    const drop = dropOf(fileLine(`Sun 2026-04-05 20:41:42 XYZT node-1 kernel: calico-packet: ${TCP4}`));
    expect(drop.time).toBe(local(2026, 4, 5, 20, 41, 42));
  });

  it('takes a short-full line without a zone name as having a host there', () => {
    const drop = dropOf(fileLine(`Sun 2026-04-05 20:41:42 node-1 kernel: calico-packet: ${TCP4}`));
    expect(drop.host).toBe('node-1');
  });

  it('accepts a line without a host', () => {
    const drop = dropOf(fileLine(`2026-04-05T20:41:42Z kernel: calico-packet: ${TCP4}`));
    expect(drop.host).toBe('');
  });

  it('accepts a line with the prefix right after the stamp', () => {
    expect(dropOf(fileLine(`2026-04-05T20:41:42Z calico-packet: ${TCP4}`)).host).toBe('');
  });

  it.each([
    ['an uptime stamp', '[12345.678901] '],
    ['a space-padded uptime stamp', '[    5.123456] '],
    ['no uptime stamp', ''],
  ])('finds the prefix after kernel: and %s', (_name, uptime) => {
    const drop = dropOf(fileLine(`Apr 05 20:41:42 node-1 kernel: ${uptime}calico-packet: ${TCP4}`));
    expect(drop.src).toBe('10.4.0.4');
  });
});

describe('years of traditional stamps', () => {
  const cases: [string, number, string, number][] = [
    ['the current year', Date.UTC(2026, 0, 10), 'Jan 09 10:00:00', local(2026, 1, 9, 10, 0, 0)],
    [
      'last year for a date later than tomorrow',
      Date.UTC(2026, 0, 10),
      'Dec 31 23:59:59',
      local(2025, 12, 31, 23, 59, 59),
    ],
    [
      'the current year for a date less than a day ahead',
      Date.UTC(2026, 5, 1, 12),
      'Jun 02 06:00:00',
      local(2026, 6, 2, 6, 0, 0),
    ],
    [
      'last year for a date more than a day ahead',
      Date.UTC(2026, 5, 1, 12),
      'Jun 03 13:00:00',
      local(2025, 6, 3, 13, 0, 0),
    ],
    [
      'next year just after New Year',
      Date.UTC(2025, 11, 31, 23),
      'Jan  1 00:30:00',
      local(2026, 1, 1, 0, 30, 0),
    ],
    [
      'the last leap year for February 29',
      Date.UTC(2026, 5, 1),
      'Feb 29 12:00:00',
      local(2024, 2, 29, 12, 0, 0),
    ],
  ];
  it.each(cases)('%s', (_name, now, stamp, time) => {
    const parser = parserFor('calico-packet', null, now);
    expect(dropOf(fileLine(`${stamp} node-1 kernel: calico-packet: ${TCP4}`, parser)).time).toBe(time);
  });
});

describe('PACKET_DROP_LOG_TIME_LAYOUT (Go layouts)', () => {
  const cases: [string, string, number][] = [
    [
      '2006-01-02T15:04:05.000000-07:00',
      '2026-04-05T20:41:42.123456+02:00',
      Date.UTC(2026, 3, 5, 18, 41, 42, 123),
    ],
    ['Jan _2 15:04:05', 'Apr  5 20:41:42', local(2026, 4, 5, 20, 41, 42)],
    ['Jan 2 15:04:05', 'Apr 5 20:41:42', local(2026, 4, 5, 20, 41, 42)],
    ['January 02, 2006 15:04:05', 'April 05, 2026 20:41:42', local(2026, 4, 5, 20, 41, 42)],
    ['02/01/2006 03:04:05 PM', '05/04/2026 08:41:42 PM', local(2026, 4, 5, 20, 41, 42)],
    ['02/01/2006 3:04:05 PM', '05/04/2026 12:01:02 AM', local(2026, 4, 5, 0, 1, 2)],
    ['1/2/06 15:4:5', '4/5/26 20:41:42', local(2026, 4, 5, 20, 41, 42)],
    ['Mon Jan 2 15:04:05 MST 2006', 'Sun Apr 5 20:41:42 UTC 2026', Date.UTC(2026, 3, 5, 20, 41, 42)],
    [
      'Monday 2006-01-02 15:04:05 -0700',
      'Sunday 2026-04-05 20:41:42 -0130',
      Date.UTC(2026, 3, 5, 22, 11, 42),
    ],
    ['2006-01-02 15:04:05.999 Z07:00', '2026-04-05 20:41:42.5 Z', Date.UTC(2026, 3, 5, 20, 41, 42, 500)],
    ['2006-01-02 15:04:05.999 Z07:00', '2026-04-05 20:41:42 +01:00', Date.UTC(2026, 3, 5, 19, 41, 42)],
    ['2006-01-02 15:04:05,000', '2026-04-05 20:41:42,250', local(2026, 4, 5, 20, 41, 42, 250)],
    ['20060102150405', '20260405204142', local(2026, 4, 5, 20, 41, 42)],
    ['2006-01-02T15:04:05Z07', '2026-04-05T20:41:42-03', Date.UTC(2026, 3, 5, 23, 41, 42)],
    // Go accepts a fraction after the seconds even when the layout has none.
    ['2006-01-02 15:04:05', '2026-04-05 20:41:42.75', local(2026, 4, 5, 20, 41, 42, 750)],
    ['_2 Jan 2006 15:04', ' 5 Apr 2026 20:41', local(2026, 4, 5, 20, 41, 0)],
  ];
  it.each(cases)('%s', (layout, stamp, time) => {
    const parser = parserFor('calico-packet', layout);
    const drop = dropOf(fileLine(`${stamp} node-1 kernel: calico-packet: ${TCP4}`, parser));
    expect(drop.time).toBe(time);
    expect(drop.host).toBe('node-1');
  });

  it('falls back to the built-in styles when the layout does not match', () => {
    const parser = parserFor('calico-packet', 'Jan _2 15:04:05');
    expect(dropOf(fileLine(kernLine(TCP4), parser)).time).toBe(KERN_LINE_TIME);
  });

  it('rejects what neither the layout nor a built-in style reads', () => {
    const parser = parserFor('calico-packet', '02/01/2006 15:04');
    expect(fileLine(`31/02/2026 10:00 node-1 kernel: calico-packet: ${TCP4}`, parser)).toMatchObject({
      kind: 'invalid',
      reason: 'bad_timestamp',
    });
  });
});

describe('prefix matching', () => {
  const matching: [string, string, string][] = [
    ['token with colon', 'calico-packet', 'calico-packet: IN=eth0'],
    ['token without colon', 'calico-packet', 'calico-packet IN=eth0'],
    ['glued with colon', 'calico-packet', 'calico-packet:IN=eth0'],
    ['glued without colon', 'calico-packet', 'calico-packetIN=eth0'],
    ['configured with colon, logged without', 'calico-packet:', 'calico-packet IN=eth0'],
    ['configured with colon and space', ' DROP: ', 'DROP:IN=eth0'],
    ['configured with inner spaces', 'fw drop: ', 'fw drop: IN=eth0'],
    ['after a near miss on the same line', 'calico-packet', 'xcalico-packet calico-packet: IN=eth0'],
    ['at the very start of a journal message', 'calico-packet', 'calico-packet: IN=eth0'],
  ];
  it.each(matching)('matches %s', (_name, prefix, message) => {
    const line = `2026-04-05T20:41:42Z node-1 kernel: ${message} ${TCP4.slice(TCP4.indexOf('OUT='))}`;
    const drop = dropOf(fileLine(line, parserFor(prefix)));
    expect(drop.prefix).toBe(prefix.trim().replace(/:$/, ''));
    expect(drop.in).toBe('eth0');
  });

  const nearMisses: [string, string, string][] = [
    ['a longer token before', 'calico-packet', 'xcalico-packet: IN=eth0'],
    ['a longer token after', 'calico-packet', 'calico-packets: IN=eth0'],
    ['a hyphenated longer token', 'calico-packet', 'calico-packet-drop: IN=eth0'],
    ['a double colon', 'calico-packet', 'calico-packet:: IN=eth0'],
    ['another prefix', 'calico-drop', 'calico-packet: IN=eth0'],
    ['a different inner word', 'fw drop', 'fw drops: IN=eth0'],
    ['a different case', 'calico-packet', 'CALICO-PACKET: IN=eth0'],
  ];
  it.each(nearMisses)('skips %s', (_name, prefix, message) => {
    const line = `2026-04-05T20:41:42Z node-1 kernel: ${message} ${TCP4.slice(TCP4.indexOf('OUT='))}`;
    expect(fileLine(line, parserFor(prefix))).toBe(NOT_PREFIXED);
  });

  it.each([
    'Apr 05 20:41:42 node-1 kernel: IPv6: ADDRCONF(NETDEV_CHANGE): cali6e7bb88b982: link becomes ready',
    '',
    '   ',
    'garbage',
    'calico',
  ])('skips unrelated lines: %j', (line) => {
    expect(fileLine(line)).toBe(NOT_PREFIXED);
  });

  it('rejects an empty prefix when the parser is created', () => {
    expect(() => parserFor(' : ')).toThrow();
  });
});

describe('fields', () => {
  it('turns the kernel’s full IPv6 form into RFC 5952 short form', () => {
    const drop = dropOf(fileLine(kernLine(TCP6)));
    expect(drop).toMatchObject({
      src: 'fd00:10:244::5',
      dst: 'fd00:10:244:1::a06',
      ipVersion: 6,
      proto: 'TCP',
      srcPort: 43210,
      dstPort: 443,
      ttl: 63,
      length: 80,
    });
  });

  it('reads ICMPv6 with TYPE and CODE', () => {
    expect(dropOf(fileLine(kernLine(ICMP6)))).toMatchObject({
      src: 'fd00:10:244::5',
      dst: '2001:db8::1:0:0:1',
      proto: 'ICMPv6',
      srcPort: null,
      dstPort: null,
      out: '',
      ttl: 64,
      icmpType: 128,
      icmpCode: 0,
    });
  });

  it('takes the IP header’s ID= and LEN= over the ICMP echo ID=', () => {
    expect(dropOf(fileLine(kernLine(ICMP_ECHO)))).toMatchObject({
      proto: 'ICMP',
      srcPort: null,
      dstPort: null,
      icmpType: 8,
      icmpCode: 0,
      length: 84,
      out: '',
    });
  });

  it('ignores the packet an ICMP error quotes in brackets', () => {
    expect(dropOf(fileLine(kernLine(ICMP_UNREACHABLE)))).toMatchObject({
      src: '10.4.1.6',
      dst: '10.4.0.4',
      proto: 'ICMP',
      srcPort: null,
      dstPort: null,
      icmpType: 3,
      icmpCode: 3,
      length: 88,
      mac: null,
      ttl: 64,
    });
  });

  it('takes the IP header’s LEN= over the UDP header’s', () => {
    expect(dropOf(fileLine(kernLine(UDP4)))).toMatchObject({
      proto: 'UDP',
      srcPort: 41000,
      dstPort: 53,
      length: 76,
    });
  });

  const portless: [string, string, string][] = [
    ['GRE by number', 'PROTO=47', '47'],
    ['ESP', 'PROTO=ESP SPI=0x1234', 'ESP'],
    ['AH', 'PROTO=AH SPI=0x1', 'AH'],
    ['a TCP fragment', 'FRAG:185 PROTO=TCP', 'TCP'],
    ['a truncated UDP header', 'PROTO=UDP INCOMPLETE [4 bytes]', 'UDP'],
  ];
  it.each(portless)('has null ports for %s', (_name, tail, proto) => {
    const fields = `IN=eth0 OUT=eth1 SRC=192.168.1.2 DST=192.168.1.3 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=1 ${tail}`;
    expect(dropOf(fileLine(kernLine(fields)))).toMatchObject({ proto, srcPort: null, dstPort: null });
  });

  it.each([
    ['UDPLITE', 'PROTO=UDPLITE SPT=1000 DPT=2000 LEN=20'],
    ['SCTP', 'PROTO=SCTP SPT=1000 DPT=2000'],
  ])('keeps %s as the kernel names it, with its ports', (proto, tail) => {
    const fields = `IN=eth0 OUT=eth1 SRC=192.168.1.2 DST=192.168.1.3 LEN=100 TTL=64 ID=1 ${tail}`;
    expect(dropOf(fileLine(kernLine(fields)))).toMatchObject({ proto, srcPort: 1000, dstPort: 2000 });
  });

  it.each([
    ['absent', 'IN=eth0 OUT=eth1 SRC=1.2.3.4'],
    ['empty', 'IN=eth0 OUT=eth1 MAC= SRC=1.2.3.4'],
  ])('has a null MAC when it is %s', (_name, head) => {
    expect(
      dropOf(fileLine(kernLine(`${head} DST=5.6.7.8 LEN=60 TTL=1 PROTO=TCP SPT=1 DPT=2`))).mac,
    ).toBeNull();
  });

  it('reads no token that only begins like a key', () => {
    const drop = dropOf(
      fileLine(
        kernLine(
          'IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 HOPLIMITS=9 TTL=63 PROTX=UDP PROTOS=UDP PROTO=ICMP TYPES=9 TYPE=3 CODEX=7 CODE=1',
        ),
      ),
    );
    expect(drop).toMatchObject({ ttl: 63, proto: 'ICMP', icmpType: 3, icmpCode: 1, srcPort: null });
  });

  it('keeps empty IN= and OUT= as empty strings', () => {
    const drop = dropOf(
      fileLine(kernLine('IN= OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=60 TTL=1 PROTO=TCP SPT=1 DPT=2')),
    );
    expect([drop.in, drop.out]).toEqual(['', '']);
  });

  it('reads bridge lines with PHYSIN=/PHYSOUT= and IPv4-mapped addresses', () => {
    const fields =
      'IN=br0 OUT=br0 PHYSIN=veth1 PHYSOUT=veth2 SRC=0000:0000:0000:0000:0000:ffff:0a04:0004 DST=::ffff:10.4.0.5 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=40';
    expect(dropOf(fileLine(kernLine(fields)))).toMatchObject({
      src: '::ffff:10.4.0.4',
      dst: '::ffff:10.4.0.5',
      ipVersion: 6,
      in: 'br0',
    });
  });

  it('ignores a CRLF line ending and trailing spaces', () => {
    expect(dropOf(fileLine(`${kernLine(TCP4)}  \r`)).src).toBe('10.4.0.4');
    expect(
      dropOf(fileLine(`${kernLine(TCP4.replace(' WINDOW=42600 RES=0x00 SYN URGP=0', ''))}\r`)).dstPort,
    ).toBe(12865);
  });

  it('reads lines given as spans of a larger text', () => {
    const syslog = new SyslogReader({ prefix: 'calico-packet', timeLayout: null, now: () => NOW });
    const parseLine = (text: string, start: number, end: number) => parse(syslog.record(text, start, end));
    const lines = [kernLine(TCP4), 'unrelated', kernLine(UDP4), kernLine(ICMP6)];
    const text = `${lines.join('\n')}\n`;
    const results: ParseResult[] = [];
    for (
      let start = 0, end = text.indexOf('\n');
      end >= 0;
      start = end + 1, end = text.indexOf('\n', start)
    ) {
      results.push(parseLine(text, start, end));
    }
    expect(results.map((r) => r.kind)).toEqual(['drop', 'skip', 'drop', 'drop']);
    expect(results.map((r) => (r.kind === 'drop' ? r.drop.src : null))).toEqual([
      '10.4.0.4',
      null,
      '10.4.1.6',
      'fd00:10:244::5',
    ]);
  });
});

describe('journal records', () => {
  const record = (text: string, host: string | null = 'node-1', time = 1_775_421_702_123.5): LogRecord => ({
    text,
    time,
    host,
  });

  it.each([
    ['a plain message', `calico-packet: ${TCP4}`],
    ['an uptime stamp', `[ 1234.567890] calico-packet: ${TCP4}`],
    ['a trailing newline', `calico-packet: ${TCP4}\n`],
  ])('takes time and host from the journal for %s', (_name, text) => {
    expect(dropOf(parse(record(text)))).toMatchObject({
      time: 1_775_421_702_123.5,
      host: 'node-1',
      src: '10.4.0.4',
      dstPort: 12865,
    });
  });

  it('has an empty host when the journal has none', () => {
    expect(dropOf(parse(record(`calico-packet: ${TCP4}`, null))).host).toBe('');
  });

  it('skips messages without the prefix', () => {
    expect(parse(record('IPv6: ADDRCONF(NETDEV_UP): eth0: link is not ready'))).toBe(NOT_PREFIXED);
  });

  it.each([
    ['an invalid host', record(`calico-packet: ${TCP4}`, 'node 1;rm'), 'bad_host'],
    ['a time that is not a number', record(`calico-packet: ${TCP4}`, 'n', Number.NaN), 'bad_timestamp'],
    ['a time out of range', record(`calico-packet: ${TCP4}`, 'n', 1e17), 'bad_timestamp'],
    ['a missing field', record('calico-packet: IN=eth0 OUT= SRC=1.2.3.4 PROTO=TCP'), 'missing_field'],
  ])('reports %s', (_name, input, reason) => {
    expect(parse(input)).toMatchObject({ kind: 'invalid', reason });
  });
});

describe('invalid lines', () => {
  const base = 'IN=eth0 OUT=eth1 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TTL=64 ID=1 DF PROTO=TCP SPT=1000 DPT=80';
  const cases: [string, string, string][] = [
    ['no SRC=', base.replace('SRC=10.0.0.1 ', ''), 'missing_field'],
    ['no DST=', base.replace('DST=10.0.0.2 ', ''), 'missing_field'],
    ['no PROTO=', base.replace('PROTO=TCP ', ''), 'missing_field'],
    ['nothing after the prefix', '', 'missing_field'],
    ['SPT= without DPT=', base.replace(' DPT=80', ''), 'missing_field'],
    ['an octet over 255', base.replace('SRC=10.0.0.1', 'SRC=10.0.0.256'), 'bad_address'],
    ['a leading zero', base.replace('SRC=10.0.0.1', 'SRC=010.0.0.1'), 'bad_address'],
    ['three octets', base.replace('DST=10.0.0.2', 'DST=10.0.2'), 'bad_address'],
    ['an empty address', base.replace('SRC=10.0.0.1', 'SRC='), 'bad_address'],
    [
      'a zone id',
      base.replace('SRC=10.0.0.1', 'SRC=fe80::1%eth0').replace('DST=10.0.0.2', 'DST=fe80::2'),
      'bad_address',
    ],
    [
      'two gaps',
      base.replace('SRC=10.0.0.1', 'SRC=fd00::1::2').replace('DST=10.0.0.2', 'DST=fd00::2'),
      'bad_address',
    ],
    [
      'nine groups',
      base.replace('SRC=10.0.0.1', 'SRC=1:2:3:4:5:6:7:8:9').replace('DST=10.0.0.2', 'DST=::2'),
      'bad_address',
    ],
    ['mixed IP versions', base.replace('DST=10.0.0.2', 'DST=fd00::2'), 'bad_address'],
    ['a hostname', base.replace('SRC=10.0.0.1', 'SRC=evil.example.com'), 'bad_address'],
    ['a port over 65535', base.replace('SPT=1000', 'SPT=65536'), 'bad_port'],
    ['a negative port', base.replace('DPT=80', 'DPT=-1'), 'bad_port'],
    ['a port with letters', base.replace('DPT=80', 'DPT=80a'), 'bad_port'],
    ['an empty port', base.replace('DPT=80', 'DPT='), 'bad_port'],
    ['a huge port', base.replace('DPT=80', `DPT=${'9'.repeat(40)}`), 'bad_port'],
    ['a TTL over 255', base.replace('TTL=64', 'TTL=256'), 'bad_field'],
    ['a non-numeric LEN=', base.replace('LEN=60', 'LEN=abc'), 'bad_field'],
    ['a protocol with symbols', base.replace('PROTO=TCP', 'PROTO=T$P'), 'bad_field'],
    ['an overlong protocol', base.replace('PROTO=TCP', `PROTO=${'A'.repeat(17)}`), 'bad_field'],
    ['an interface with symbols', base.replace('IN=eth0', 'IN=eth0;reboot'), 'bad_field'],
    ['an interface over 15 characters', base.replace('IN=eth0', 'IN=abcdefghijklmnop'), 'bad_field'],
    ['a malformed MAC', base.replace('IN=eth0 OUT=eth1', 'IN=eth0 OUT=eth1 MAC=ee:ee:e'), 'bad_field'],
    [
      'a MAC with non-hex digits',
      base.replace('IN=eth0 OUT=eth1', 'IN=eth0 OUT=eth1 MAC=zz:ee'),
      'bad_field',
    ],
  ];
  it.each(cases)('reports %s', (_name, fields, reason) => {
    const result = fileLine(kernLine(fields));
    expect(result).toMatchObject({ kind: 'invalid', reason });
  });

  const badHeaders: [string, string, string][] = [
    ['an unknown month', 'Foo 05 20:41:42 node-1', 'bad_timestamp'],
    ['month 13', '2026-13-05T20:41:42Z node-1', 'bad_timestamp'],
    ['February 30', 'Feb 30 20:41:42 node-1', 'bad_timestamp'],
    ['hour 24', '2026-04-05T24:00:00Z node-1', 'bad_timestamp'],
    ['a leap second', '2026-04-05T23:59:60Z node-1', 'bad_timestamp'],
    ['an offset over 23 hours', '2026-04-05T20:41:42+24:00 node-1', 'bad_timestamp'],
    ['no timestamp at all', 'node-1', 'bad_timestamp'],
    ['a stamp running into text', '2026-04-05T20:41:42Zjunk node-1', 'bad_timestamp'],
    ['a host with symbols', 'Apr 05 20:41:42 node$1', 'bad_host'],
  ];
  it.each(badHeaders)('reports %s', (_name, header, reason) => {
    expect(fileLine(`${header} kernel: calico-packet: ${base}`)).toMatchObject({ kind: 'invalid', reason });
  });

  it('rejects a 10 MB journal message quickly, without throwing', () => {
    const text = `calico-packet: ${TCP4} ${'\u0000\ufffd'.repeat(5_000_000)}`;
    expect(parse({ text, time: NOW, host: 'node-1' })).toMatchObject({ kind: 'invalid', reason: 'too_long' });
  });

  it('reports lines over 16 KiB as too long, whatever they hold', () => {
    expect(fileLine(`${kernLine(TCP4)} ${'X'.repeat(16 * 1024)}`)).toMatchObject({
      kind: 'invalid',
      reason: 'too_long',
    });
    expect(fileLine(`no prefix ${'X'.repeat(16 * 1024)}`)).toBe(NOT_PREFIXED);
  });

  it('measures the 16 KiB in bytes of UTF-8, trailing blanks included, as the sources cut lines', () => {
    const wide = `${kernLine(TCP4)} ${'é'.repeat(9000)}`;
    expect(wide.length).toBeLessThan(16 * 1024);
    const detail = `${Buffer.byteLength(wide)} bytes`;
    expect(fileLine(wide)).toEqual({ kind: 'invalid', reason: 'too_long', detail });
    expect(parse({ text: wide, time: NOW, host: 'node-1' })).toEqual({
      kind: 'invalid',
      reason: 'too_long',
      detail,
    });
    const padded = `${kernLine(TCP4)}${' '.repeat(16 * 1024)}`;
    expect(fileLine(padded)).toMatchObject({ kind: 'invalid', reason: 'too_long' });
    expect(parse({ text: padded, time: NOW, host: 'node-1' })).toMatchObject({ reason: 'too_long' });
  });

  it('quotes offending values without control characters, cut to a readable length', () => {
    const result = fileLine(
      kernLine(base.replace('SRC=10.0.0.1', `SRC=\u001b[31m\u0000\u202e${'1'.repeat(200)}`)),
    );
    expect(result.kind).toBe('invalid');
    if (result.kind !== 'invalid') return;
    expect(result.detail).toMatch(/^SRC="\\u001b\[31m\\u0000\\u202e1+\.\.\."$/);
    expect(result.detail.length).toBeLessThan(120);
  });
});

describe('fields in any order', () => {
  it('reads every field wherever it stands (the Go original’s own test line)', () => {
    const fields =
      'SRC=10.0.0.1 SPT=1234 DST=10.0.0.2 DPT=80 PROTO=TCP IN=eth0 OUT=eth1 MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 TTL=63';
    expect(dropOf(fileLine(kernLine(fields)))).toMatchObject({
      src: '10.0.0.1',
      dst: '10.0.0.2',
      srcPort: 1234,
      dstPort: 80,
      proto: 'TCP',
      in: 'eth0',
      out: 'eth1',
      mac: '00:11:22:33:44:55:66:77:88:99:aa:bb:08:00',
      ttl: 63,
    });
  });

  it('keeps the IP header’s LEN= when the fields come in another order', () => {
    const fields = 'PROTO=UDP SPT=1 DPT=2 SRC=10.0.0.1 DST=10.0.0.2 IN=eth0 OUT= LEN=76 TTL=9 ID=4 LEN=56';
    expect(dropOf(fileLine(kernLine(fields)))).toMatchObject({ length: 76, ttl: 9, in: 'eth0' });
  });
});

describe('protocol tokens', () => {
  const v4 = (proto: string) => `IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TTL=64 ID=1 PROTO=${proto}`;
  const v6 = (proto: string) => `IN=eth0 OUT= SRC=fd00::1 DST=fd00::2 LEN=60 HOPLIMIT=64 PROTO=${proto}`;
  it.each([
    ['TCP', v4],
    ['UDP', v4],
    ['UDPLITE', v6],
    ['SCTP', v4],
    ['ESP', v6],
    ['AH', v4],
    ['ICMP', v4],
    ['ICMPv6', v6],
    ['0', v4],
    ['47', v6],
    ['255', v4],
  ])('accepts PROTO=%s', (proto, fields) => {
    expect(dropOf(fileLine(kernLine(fields(proto)))).proto).toBe(proto);
  });

  it.each([
    ['a cut name', v4('TC')],
    ['an unknown name', v4('X')],
    ['a number over 255', v4('256')],
    ['a lowercase name', v4('tcp')],
    ['the number of a protocol the kernel names', v4('6')],
    ['a number with a leading zero', v4('047')],
    ['ICMPv6 over IPv4', v4('ICMPv6')],
    ['ICMP over IPv6', v6('ICMP')],
  ])('rejects %s', (_name, fields) => {
    expect(fileLine(kernLine(fields))).toMatchObject({
      kind: 'invalid',
      reason: 'bad_field',
      detail: expect.stringContaining('PROTO='),
    });
  });
});

describe('numeric fields', () => {
  const base = 'IN=eth0 OUT=eth1 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TTL=64 ID=1 DF PROTO=TCP SPT=1000 DPT=80';
  it.each([
    ['a NUL after a port at the end of the line', base.replace('DPT=80', 'DPT=2\u0000'), 'bad_port'],
    ['a leading zero in a port', base.replace('DPT=80', 'DPT=08'), 'bad_port'],
    ['a leading zero in a TTL', base.replace('TTL=64', 'TTL=064'), 'bad_field'],
    ['a leading zero in LEN=', base.replace('LEN=60', 'LEN=060'), 'bad_field'],
    ['a control character in a port', base.replace('SPT=1000', 'SPT=10\u000100'), 'bad_port'],
  ])('rejects %s', (_name, fields, reason) => {
    expect(fileLine(kernLine(fields))).toMatchObject({ kind: 'invalid', reason });
  });

  it('accepts a lone 0', () => {
    expect(dropOf(fileLine(kernLine(base.replace('SPT=1000', 'SPT=0')))).srcPort).toBe(0);
  });
});

describe('lines that carry the prefix in an odd place', () => {
  it.each([
    ['a control character before the prefix', `Apr 05 20:41:42 node-1 kernel: \u0001calico-packet: ${TCP4}`],
    ['a NUL before the prefix', `Apr 05 20:41:42 node-1 kernel: \u0000calico-packet: ${TCP4}`],
  ])('reports %s', (_name, line) => {
    expect(fileLine(line)).toMatchObject({ kind: 'invalid' });
  });

  it('reports a journal message with a control character before the prefix', () => {
    expect(parse({ text: `\u0001calico-packet: ${TCP4}`, time: NOW, host: 'node-1' })).toMatchObject({
      kind: 'invalid',
    });
  });
});

describe('the syslog tag of file lines', () => {
  it.each([
    ['logger’s tag', `Apr 05 20:41:42 node1 root: calico-packet: ${TCP4}`],
    ['a tag with a pid', `Apr 05 20:41:42 node1 sshd[123]: calico-packet: ${TCP4}`],
    ['a tag that only begins like kernel', `Apr 05 20:41:42 node1 kernelx: calico-packet: ${TCP4}`],
    ['a tag after a host-less stamp', `2026-04-05T20:41:42Z root: calico-packet: ${TCP4}`],
  ])('does not take a drop from %s', (_name, line) => {
    expect(fileLine(line)).toMatchObject({ kind: 'invalid', reason: 'untrusted_tag' });
  });

  it('skips a line with another tag and no prefix, without counting it', () => {
    expect(fileLine('Apr 05 20:41:42 node1 root: hello')).toBe(NOT_PREFIXED);
  });

  it.each([
    ['kernel:', `Apr 05 20:41:42 node1 kernel: calico-packet: ${TCP4}`],
    ['kernel: and an uptime', `Apr 05 20:41:42 node1 kernel: [ 12.5] calico-packet: ${TCP4}`],
    ['no tag', `Apr 05 20:41:42 node1 calico-packet: ${TCP4}`],
    ['no tag and no host', `2026-04-05T20:41:42Z calico-packet: ${TCP4}`],
  ])('takes a drop from a line with %s', (_name, line) => {
    expect(dropOf(fileLine(line)).src).toBe('10.4.0.4');
  });
});
