/**
 * Kernel packet-drop log lines (iptables/nftables LOG target) into PacketDrops. Written for the hot
 * path: most lines of a busy node are skipped after one indexOf, and the rest are scanned once with
 * indexOf/charCodeAt, allocating little beyond the result.
 */

import { isOverlong, MAX_LINE_LENGTH } from '../lines.ts';
import { canonicalIp, ipVersion, ipv4ValueAt } from '../net.ts';
import { normalizePrefix, type PrefixTemplate, parseTemplate } from '../prefix-template.ts';
import type { LogRecord, PacketDrop, PolicyRef } from '../types.ts';
import { DateParts, MAX_DATE_MS, type StampParser, TimeResolver } from './dates.ts';
import {
  endOf,
  FIELD_NAMES,
  Field,
  FieldScan,
  has,
  MALFORMED,
  NUMBER_LIMITS,
  type Spans,
  scanFields,
  startOf,
} from './fields.ts';
import { HostSpan, headerAt, tagEndAt } from './header.ts';
import { readPolicy } from './policy.ts';
import { findPrefix, NO_PREFIX, PREFIX_AFTER_CONTROL } from './prefix.ts';
import { createStampParser } from './timestamp.ts';
import {
  Interner,
  Ipv4Texts,
  isHostNameAt,
  isInterfaceNameAt,
  isMacAt,
  protocolAt,
  validWhole,
} from './values.ts';

export interface ParserOptions {
  /**
   * IPTABLES_LOG_PREFIX; surrounding spaces and a trailing ':' do not matter. With Calico's placeholders
   * (`calico-packet %k %p`), each drop names the policy its prefix names.
   */
  prefix: string;
  /** PACKET_DROP_LOG_TIME_LAYOUT: a Go reference layout tried before the built-in styles. */
  timeLayout: string | null;
  /** Epoch ms; gives year-less syslog stamps a year. */
  now: () => number;
}

/** Why a line that carries the prefix is no drop: a metric label, so a small fixed set. */
export const INVALID_REASONS = [
  'too_long',
  'bad_timestamp',
  'bad_host',
  'missing_field',
  'bad_address',
  'bad_port',
  'bad_field',
  'untrusted_tag',
  'bad_prefix',
] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];

export type ParseResult =
  | { kind: 'drop'; drop: PacketDrop }
  | { kind: 'skip' }
  | { kind: 'invalid'; reason: InvalidReason; detail: string };

export { MAX_LINE_LENGTH };

/** The answer for every line without the prefix (also near misses such as `calico-packets`): one shared object, so skipping allocates nothing. */
export const NOT_PREFIXED: ParseResult = Object.freeze({ kind: 'skip' });

const SPACE = 32;
/** The tag syslog daemons give kernel messages. */
const KERNEL_TAG = 'kernel:';

/** How much of an offending value a detail quotes. */
const MAX_DETAIL_VALUE = 64;

function invalid(reason: InvalidReason, detail: string): ParseResult {
  return { kind: 'invalid', reason, detail };
}

/** JSON-quoted and ASCII-only, so a hostile value cannot forge lines or terminal output where it is shown. */
function quote(text: string): string {
  const cut = text.length > MAX_DETAIL_VALUE ? `${text.slice(0, MAX_DETAIL_VALUE)}...` : text;
  return JSON.stringify(cut).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function describe(text: string, spans: Spans, field: Field): string {
  return `${FIELD_NAMES[field]}=${quote(text.slice(startOf(spans, field), endOf(spans, field)))}`;
}

function isTrailingBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/**
 * The end of the line without trailing blanks (CRLF files, journal messages ending in '\n'). Other
 * control characters stay, so that a NUL after the last value makes that value invalid.
 */
function trimmedEnd(text: string, start: number, end: number): number {
  let trimmed = end;
  while (trimmed > start && isTrailingBlank(text.charCodeAt(trimmed - 1))) trimmed--;
  return trimmed;
}

/** Whether a prefixed line is to be reported (PREFIX_AFTER_CONTROL too) rather than skipped. */
function carries(prefixAt: number): boolean {
  return prefixAt !== NO_PREFIX;
}

const REQUIRED_FIELDS: readonly Field[] = [Field.SRC, Field.DST, Field.PROTO];

/** Numeric fields in the order their problems are reported, ports first. */
const NUMERIC_FIELDS: readonly { field: Field; reason: InvalidReason }[] = [
  { field: Field.SPT, reason: 'bad_port' },
  { field: Field.DPT, reason: 'bad_port' },
  { field: Field.LEN, reason: 'bad_field' },
  { field: Field.TTL, reason: 'bad_field' },
  { field: Field.TYPE, reason: 'bad_field' },
  { field: Field.CODE, reason: 'bad_field' },
];

/** Interned values of one parser: each distinct host, interface, MAC and address is validated once. */
class InternedValues {
  readonly hosts = new Interner(validWhole(isHostNameAt));
  readonly interfaces = new Interner(validWhole(isInterfaceNameAt));
  readonly macs = new Interner(validWhole(isMacAt));
  readonly ipv6 = new Interner(canonicalIp);
  readonly ipv4 = new Ipv4Texts();

  /** A field's validated value, or null; absent counts as empty, as the kernel prints `OUT=` for none. */
  optional(interner: Interner, text: string, spans: Spans, field: Field): string | null {
    const start = startOf(spans, field);
    const end = endOf(spans, field);
    return start < 0 || start === end ? '' : interner.at(text, start, end);
  }

  address(text: string, spans: Spans, field: Field): string | null {
    const start = startOf(spans, field);
    const end = endOf(spans, field);
    const ipv4 = ipv4ValueAt(text, start, end);
    return ipv4 < 0 ? this.ipv6.at(text, start, end) : this.ipv4.at(text, start, end, ipv4);
  }
}

/** The first numeric field out of range or malformed, or null. */
function numbersProblem(text: string, scan: FieldScan): ParseResult | null {
  if (scan.numbersValid) return null;
  for (const { field, reason } of NUMERIC_FIELDS) {
    const value = scan.numbers[field]!;
    if (value === MALFORMED || value > NUMBER_LIMITS[field]!) {
      return invalid(reason, describe(text, scan.spans, field));
    }
  }
  return null;
}

function numberOrNull(scan: FieldScan, field: Field): number | null {
  const value = scan.numbers[field]!;
  return value < 0 ? null : value;
}

/** The drop described by the fields after the prefix, every value validated, or why there is none. */
function dropFrom(
  text: string,
  scan: FieldScan,
  values: InternedValues,
  time: number,
  host: string,
  prefix: string,
  policy: PolicyRef | null,
): ParseResult {
  const { spans } = scan;
  for (const field of REQUIRED_FIELDS) {
    if (!has(spans, field)) return invalid('missing_field', `no ${FIELD_NAMES[field]}=`);
  }
  const src = values.address(text, spans, Field.SRC);
  if (src === null) return invalid('bad_address', describe(text, spans, Field.SRC));
  const dst = values.address(text, spans, Field.DST);
  if (dst === null) return invalid('bad_address', describe(text, spans, Field.DST));
  const version = ipVersion(src);
  if (ipVersion(dst) !== version) return invalid('bad_address', 'SRC= and DST= are of different IP versions');
  const proto = protocolAt(text, startOf(spans, Field.PROTO), endOf(spans, Field.PROTO), version);
  if (proto === null) return invalid('bad_field', describe(text, spans, Field.PROTO));
  if (has(spans, Field.SPT) !== has(spans, Field.DPT)) {
    return invalid('missing_field', has(spans, Field.SPT) ? 'SPT= without DPT=' : 'DPT= without SPT=');
  }
  const problem = numbersProblem(text, scan);
  if (problem !== null) return problem;
  const inName = values.optional(values.interfaces, text, spans, Field.IN);
  if (inName === null) return invalid('bad_field', describe(text, spans, Field.IN));
  const outName = values.optional(values.interfaces, text, spans, Field.OUT);
  if (outName === null) return invalid('bad_field', describe(text, spans, Field.OUT));
  // `MAC=` with nothing after it is how the kernel says the device has no link-layer header.
  const mac = values.optional(values.macs, text, spans, Field.MAC);
  if (mac === null) return invalid('bad_field', describe(text, spans, Field.MAC));
  const drop: PacketDrop = {
    time,
    host,
    prefix,
    src,
    dst,
    ipVersion: version,
    proto,
    srcPort: numberOrNull(scan, Field.SPT),
    dstPort: numberOrNull(scan, Field.DPT),
    in: inName,
    out: outName,
    mac: mac === '' ? null : mac,
    ttl: numberOrNull(scan, Field.TTL),
    length: numberOrNull(scan, Field.LEN),
    icmpType: numberOrNull(scan, Field.TYPE),
    icmpCode: numberOrNull(scan, Field.CODE),
  };
  if (policy !== null) drop.policy = policy;
  return { kind: 'drop', drop };
}

/** One prefix's parser state: scratch objects reused from line to line, and the interned values. */
class Parser {
  private readonly core: string;
  /** The placeholders of IPTABLES_LOG_PREFIX after the core; null for a plain prefix. */
  private readonly template: PrefixTemplate | null;
  private readonly stamp: StampParser;
  private readonly resolver: TimeResolver;
  private readonly parts = new DateParts();
  private readonly hostSpan = new HostSpan();
  private readonly scan = new FieldScan();
  private readonly values = new InternedValues();
  /** The first occurrence of the prefix at or after `searchedFrom` in `searchedText`, or -1. */
  private searchedText = '';
  private searchedFrom = 0;
  private foundAt = -1;

  constructor(options: ParserOptions) {
    this.template = parseTemplate(options.prefix);
    this.core = this.template?.core ?? normalizePrefix(options.prefix);
    if (this.core === '') throw new Error('the log prefix is empty');
    this.stamp = createStampParser(options.timeLayout);
    this.resolver = new TimeResolver(options.now);
  }

  record(record: LogRecord): ParseResult {
    const text = record.text;
    if (record.time === null) return this.line(text, 0, text.length);
    if (!this.mayCarryPrefix(text, 0, text.length)) return NOT_PREFIXED;
    return this.journalMessage(text, record.time, record.host);
  }

  /** A syslog-style line at text[start, end), e.g. one line of a large chunk read from a file. */
  line(text: string, start: number, end: number): ParseResult {
    if (!this.mayCarryPrefix(text, start, end)) return NOT_PREFIXED;
    return this.syslogLine(text, start, end);
  }

  /**
   * The cheap test every line takes: whether the prefix text occurs in it at all. Lines of one chunk
   * come in order, so one search answers for every line up to the next occurrence: the scan stays
   * linear in the chunk however rare prefixed lines are.
   */
  private mayCarryPrefix(text: string, start: number, end: number): boolean {
    if (
      text !== this.searchedText ||
      start < this.searchedFrom ||
      (this.foundAt >= 0 && this.foundAt < start)
    ) {
      this.searchedFrom = start;
      this.foundAt = text.indexOf(this.core, start);
    }
    // Kept even when the search stands: `!==` on two distinct strings compares their characters, so
    // keeping an earlier chunk equal to this one (repetitive lines cut into chunks of one length) would
    // compare the whole chunk again for every line. The same object compares at once.
    this.searchedText = text;
    return this.foundAt >= 0 && this.foundAt + this.core.length <= end;
  }

  private tooLong(text: string, start: number, end: number): ParseResult {
    const units = end - start;
    const size =
      units > MAX_LINE_LENGTH ? `${units} characters` : `${Buffer.byteLength(text.slice(start, end))} bytes`;
    return invalid('too_long', size);
  }

  private fieldsAfter(text: string, from: number, end: number, time: number, host: string): ParseResult {
    // mayCarryPrefix found the first occurrence at or after the line's start: it is the first after
    // `from` too unless it lies in the header.
    const first =
      text === this.searchedText && this.foundAt >= from ? this.foundAt : text.indexOf(this.core, from);
    const start = findPrefix(text, this.core, from, end, first);
    if (start === NO_PREFIX) return NOT_PREFIXED;
    if (start === PREFIX_AFTER_CONTROL) return invalid('bad_field', 'a control character before the prefix');
    if (this.template === null) {
      scanFields(text, start, end, this.scan);
      return dropFrom(text, this.scan, this.values, time, host, this.core, null);
    }
    // The rendered policy runs up to the kernel's first field, which no policy name can hold (`=`).
    const fieldsAt = text.indexOf('IN=', start);
    const policyEnd = fieldsAt < 0 || fieldsAt > end ? end : fieldsAt;
    const policy = readPolicy(this.template, text, start, policyEnd);
    if (policy === null) {
      return invalid('bad_prefix', `${quote(text.slice(start, policyEnd))} does not fit the prefix template`);
    }
    scanFields(text, policyEnd, end, this.scan);
    const named =
      policy.kind !== null || policy.name !== null || policy.namespace !== null || policy.tier !== null;
    return dropFrom(text, this.scan, this.values, time, host, this.core, named ? policy : null);
  }

  private journalMessage(text: string, time: number, host: string | null): ParseResult {
    const end = trimmedEnd(text, 0, text.length);
    if (!carries(findPrefix(text, this.core, 0, end))) return NOT_PREFIXED;
    // Measured before trimming, as the sources measure lines (see syslogLine).
    if (isOverlong(text, 0, text.length)) return this.tooLong(text, 0, text.length);
    if (!Number.isFinite(time) || Math.abs(time) > MAX_DATE_MS) return invalid('bad_timestamp', String(time));
    const checkedHost = host === null || host === '' ? '' : this.values.hosts.at(host, 0, host.length);
    if (checkedHost === null) return invalid('bad_host', quote(host ?? ''));
    return this.fieldsAfter(text, 0, end, time, checkedHost);
  }

  private syslogLine(text: string, start: number, rawEnd: number): ParseResult {
    // Measured before trimming: a line that a reader cut to one byte over the limit must stay over it
    // even when the cut left only blanks at its end.
    if (isOverlong(text, start, rawEnd)) {
      return carries(findPrefix(text, this.core, start, rawEnd))
        ? this.tooLong(text, start, rawEnd)
        : NOT_PREFIXED;
    }
    const end = trimmedEnd(text, start, rawEnd);
    const from = headerAt(text, start, end, this.stamp, this.parts, this.hostSpan);
    const time = from < 0 ? Number.NaN : this.resolver.resolve(this.parts);
    if (Number.isNaN(time)) {
      if (!carries(findPrefix(text, this.core, start, end))) return NOT_PREFIXED;
      return invalid('bad_timestamp', `no known timestamp at the start of ${quote(text.slice(start, end))}`);
    }
    const { hostSpan } = this;
    const host =
      hostSpan.end > hostSpan.start ? this.values.hosts.at(text, hostSpan.start, hostSpan.end) : '';
    if (host === null) {
      if (!carries(findPrefix(text, this.core, from, end))) return NOT_PREFIXED;
      return invalid('bad_host', quote(text.slice(hostSpan.start, hostSpan.end)));
    }
    return this.fieldsAfterTag(text, from, end, time, host);
  }

  /**
   * Only the kernel's own lines count: a syslog tag after the host other than `kernel:` is what any
   * local process can write (`logger`), so its lines are reported, not parsed. A line whose message
   * begins with the prefix itself has no tag.
   */
  private fieldsAfterTag(text: string, from: number, end: number, time: number, host: string): ParseResult {
    let tagStart = from;
    while (tagStart < end && text.charCodeAt(tagStart) === SPACE) tagStart++;
    const tagEnd = tagEndAt(text, tagStart, end);
    if (tagEnd < 0 || this.isPrefixToken(text, tagStart, tagEnd))
      return this.fieldsAfter(text, from, end, time, host);
    if (tagEnd - tagStart === KERNEL_TAG.length && text.startsWith(KERNEL_TAG, tagStart)) {
      return this.fieldsAfter(text, tagEnd, end, time, host);
    }
    if (!carries(findPrefix(text, this.core, tagEnd, end))) return NOT_PREFIXED;
    return invalid('untrusted_tag', quote(text.slice(tagStart, tagEnd)));
  }

  /** Whether text[start, end), a token ending in ':', is the prefix with its colons. */
  private isPrefixToken(text: string, start: number, end: number): boolean {
    return text.startsWith(this.core, start) && normalizePrefix(text.slice(start, end)) === this.core;
  }
}

/**
 * Creates a parser for one prefix. A record with a `time` is a journal MESSAGE (time and host come
 * from the journal); one without is a whole syslog-style line that carries its own stamp and host.
 * Never throws on any record: what is not a drop is 'invalid' (if it carries the prefix) or 'skip'.
 */
export function createParser(options: ParserOptions): (record: LogRecord) => ParseResult {
  const parser = new Parser(options);
  return (record) => parser.record(record);
}

/**
 * The same for syslog-style lines given as text[start, end) of a larger string, so that a file reader
 * can hand over lines of a decoded chunk without cutting them out first.
 */
export function createLineParser(
  options: ParserOptions,
): (text: string, start: number, end: number) => ParseResult {
  const parser = new Parser(options);
  return (text, start, end) => parser.line(text, start, end);
}
