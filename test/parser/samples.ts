/** Kernel log fields shared by the parser tests: real shapes of what nf_log_syslog prints. */

import { createParser, type ParseResult } from '../../agent/parser/parse.ts';
import { type SyslogOptions, SyslogReader } from '../../agent/sources/syslog/record.ts';

export const TCP4 =
  'IN=cali6e7bb88b982 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00 SRC=10.4.0.4 DST=10.4.1.6 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=36387 DF PROTO=TCP SPT=60353 DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0';

export const UDP4 =
  'IN=eth0 OUT=cali12d4a061371 MAC=ee:ee:ee:ee:ee:ee:42:01:0a:80:00:02:08:00 SRC=10.4.1.6 DST=10.4.0.16 LEN=76 TOS=0x00 PREC=0x00 TTL=62 ID=4242 DF PROTO=UDP SPT=41000 DPT=53 LEN=56';

export const ICMP_ECHO =
  'IN=cali6e7bb88b982 OUT= MAC=ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00 SRC=10.4.0.4 DST=10.4.1.6 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=51000 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1';

export const ICMP_UNREACHABLE =
  'IN=eth0 OUT=cali6e7bb88b982 SRC=10.4.1.6 DST=10.4.0.4 LEN=88 TOS=0x00 PREC=0xC0 TTL=64 ID=9 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.4.0.4 DST=10.4.1.6 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=UDP SPT=5000 DPT=53 LEN=40 ] MARK=0x10000';

export const TCP6 =
  'IN=cali6e7bb88b982 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:86:dd SRC=fd00:0010:0244:0000:0000:0000:0000:0005 DST=fd00:0010:0244:0001:0000:0000:0000:0a06 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=123 PROTO=TCP SPT=43210 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0';

export const ICMP6 =
  'IN=cali6e7bb88b982 OUT= MAC=ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:86:dd SRC=fd00:0010:0244:0000:0000:0000:0000:0005 DST=2001:0db8:0000:0000:0001:0000:0000:0001 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=12 SEQ=1';

/** A syslog line as rsyslog writes it to kern.log, with the given fields after the prefix. */
export function kernLine(fields: string, prefix = 'calico-packet:'): string {
  return `2026-04-05T20:41:42.123456+02:00 node-1 kernel: [12345.678901] ${prefix} ${fields}`;
}

/** 2026-04-05T18:41:42.123Z: the time of kernLine. */
export const KERN_LINE_TIME = Date.UTC(2026, 3, 5, 18, 41, 42, 123);

/** A log file line as the agent takes it: its header read by the file source's SyslogReader, then parsed. */
export function fileLineParser(options: SyslogOptions): (line: string) => ParseResult {
  const syslog = new SyslogReader(options);
  const parse = createParser(options);
  return (line) => parse(syslog.record(line));
}

/** The header reader a file source gets from the agent with the default settings. */
export function syslogReader(): SyslogReader {
  return new SyslogReader({ prefix: 'calico-packet', timeLayout: null, now: Date.now });
}
