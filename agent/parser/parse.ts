/**
 * Kernel packet-drop log messages (iptables/nftables LOG target) into PacketDrops. Written for the hot
 * path: most messages of a busy node are skipped after one indexOf, and the rest are scanned once with
 * indexOf/charCodeAt, allocating little beyond the result.
 */

import { isOverlong, MAX_LINE_LENGTH } from '../lines.ts';
import { canonicalIp, ipVersion, ipv4ValueAt } from '../net.ts';
import { CoreSearch, type PrefixTemplate, parseTemplate, prefixCore } from '../prefix-template.ts';
import { type LogRecord, MAX_DATE_MS, type PacketDrop, type PolicyRef } from '../types.ts';
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
import { readPolicy } from './policy.ts';
import { findPrefix, NO_PREFIX, PREFIX_AFTER_CONTROL } from './prefix.ts';
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

/** The answer for every line without the prefix (also near misses such as `calico-packets`): one shared object, so skipping allocates nothing. */
export const NOT_PREFIXED: ParseResult = Object.freeze({ kind: 'skip' });

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

/** One prefix's parser state: scratch objects reused from message to message, and the interned values. */
class Parser {
  private readonly core: string;
  /** The placeholders of IPTABLES_LOG_PREFIX after the core; null for a plain prefix. */
  private readonly template: PrefixTemplate | null;
  private readonly search: CoreSearch;
  private readonly scan = new FieldScan();
  private readonly values = new InternedValues();

  constructor(options: ParserOptions) {
    this.template = parseTemplate(options.prefix);
    this.core = prefixCore(options.prefix);
    if (this.core === '') throw new Error('the log prefix is empty');
    this.search = new CoreSearch(this.core);
  }

  record({ text, start = 0, end: rawEnd = text.length, time, host, untrustedTag }: LogRecord): ParseResult {
    const first = this.search.firstIn(text, start, rawEnd);
    if (first < 0) return NOT_PREFIXED;
    const end = trimmedEnd(text, start, rawEnd);
    const fieldsAt = findPrefix(text, this.core, start, end, first);
    if (fieldsAt === NO_PREFIX) return NOT_PREFIXED;
    // Measured before trimming: a line that a reader cut to one byte over the limit must stay over it
    // even when the cut left only blanks at its end.
    if (isOverlong(text, start, rawEnd)) return this.tooLong(text, start, rawEnd);
    if (Number.isNaN(time)) {
      return invalid('bad_timestamp', `no known timestamp at the start of ${quote(text.slice(start, end))}`);
    }
    if (!Number.isFinite(time) || Math.abs(time) > MAX_DATE_MS) return invalid('bad_timestamp', String(time));
    const checkedHost = host === null || host === '' ? '' : this.values.hosts.at(host, 0, host.length);
    if (checkedHost === null) return invalid('bad_host', quote(host ?? ''));
    if (untrustedTag !== undefined) return invalid('untrusted_tag', quote(untrustedTag));
    if (fieldsAt === PREFIX_AFTER_CONTROL)
      return invalid('bad_field', 'a control character before the prefix');
    return this.fields(text, fieldsAt, end, time, checkedHost);
  }

  private tooLong(text: string, start: number, end: number): ParseResult {
    const units = end - start;
    const size =
      units > MAX_LINE_LENGTH ? `${units} characters` : `${Buffer.byteLength(text.slice(start, end))} bytes`;
    return invalid('too_long', size);
  }

  /** The drop in text[start, end), the fields (and a template's policy) after the prefix. */
  private fields(text: string, start: number, end: number, time: number, host: string): ParseResult {
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
}

/**
 * Creates a parser for one prefix. Never throws on any record: what is not a drop is 'invalid' (if its
 * message carries the prefix) or 'skip'.
 */
export function createParser(options: ParserOptions): (record: LogRecord) => ParseResult {
  const parser = new Parser(options);
  return (record) => parser.record(record);
}
