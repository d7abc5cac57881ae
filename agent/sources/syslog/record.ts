/**
 * A log file line as a record: its syslog header (stamp, host, tag) read here, at the file source's edge,
 * so that the parser takes every source's records alike: a message with its time and host.
 */

import { isOverlong } from '../../lines.ts';
import { normalizePrefix, prefixCore } from '../../prefix-template.ts';
import type { LogRecord } from '../../types.ts';
import { DateParts, type StampParser, TimeResolver } from './dates.ts';
import { HostSpan, headerAt, tagEndAt } from './header.ts';
import { createStampParser } from './timestamp.ts';

export interface SyslogOptions {
  /** IPTABLES_LOG_PREFIX: a message may begin with it where a tag would stand. */
  prefix: string;
  /** PACKET_DROP_LOG_TIME_LAYOUT: a Go reference layout tried before the built-in styles. */
  timeLayout: string | null;
  /** Epoch ms; gives year-less stamps a year. */
  now: () => number;
}

const SPACE = 32;
/** The tag syslog daemons give kernel messages. */
const KERNEL_TAG = 'kernel:';

/** Reads the headers of one file's lines; keeps scratch state from line to line, so one per reader. */
export class SyslogReader {
  private readonly core: string;
  private readonly stamp: StampParser;
  private readonly resolver: TimeResolver;
  private readonly parts = new DateParts();
  private readonly hostSpan = new HostSpan();
  private lastHost = '';

  constructor(options: SyslogOptions) {
    this.core = prefixCore(options.prefix);
    this.stamp = createStampParser(options.timeLayout);
    this.resolver = new TimeResolver(options.now);
  }

  /**
   * The line text[start, end) as a record. A line over the length limit or without a readable stamp is
   * handed on whole with time NaN: the parser reports it if it carries the prefix, and skips it if not.
   */
  record(text: string, start = 0, end = text.length): LogRecord {
    if (isOverlong(text, start, end)) return { text, start, end, time: Number.NaN, host: null };
    const from = headerAt(text, start, end, this.stamp, this.parts, this.hostSpan);
    const time = from < 0 ? Number.NaN : this.resolver.resolve(this.parts);
    if (Number.isNaN(time)) return { text, start, end, time, host: null };
    const host = this.host(text);
    let tagStart = from;
    while (tagStart < end && text.charCodeAt(tagStart) === SPACE) tagStart++;
    const tagEnd = tagEndAt(text, tagStart, end);
    if (tagEnd < 0 || this.isPrefixToken(text, tagStart, tagEnd))
      return { text, start: from, end, time, host };
    if (tagEnd - tagStart === KERNEL_TAG.length && text.startsWith(KERNEL_TAG, tagStart)) {
      return { text, start: tagEnd, end, time, host };
    }
    return { text, start: tagEnd, end, time, host, untrustedTag: text.slice(tagStart, tagEnd) };
  }

  /** The host of the header just read; the last one again when it is the same, as nearly every line's is. */
  private host(text: string): string {
    const { start, end } = this.hostSpan;
    const last = this.lastHost;
    if (end - start !== last.length || !text.startsWith(last, start)) this.lastHost = text.slice(start, end);
    return this.lastHost;
  }

  /** Whether text[start, end), a token ending in ':', is the prefix with its colons rather than a tag. */
  private isPrefixToken(text: string, start: number, end: number): boolean {
    return text.startsWith(this.core, start) && normalizePrefix(text.slice(start, end)) === this.core;
  }
}
