/**
 * The census of log lines behind doctor's source report: pure, fed one parsed line at a time. The agent's
 * own parser decides which lines carry the configured prefix; only the others are searched for another
 * LOG-style prefix, so that a `calico-drop` log under `IPTABLES_LOG_PREFIX=calico-packet` shows at once.
 */

import type { InvalidReason, ParseResult } from '../../parser/parse.ts';
import { normalizePrefix } from '../../prefix-template.ts';
import type { LogRecord } from '../../types.ts';
import type { AddressCount, InvalidGroup, LineCensus, PrefixCount } from './types.ts';

/** iptables allows 29 characters of --log-prefix and nftables 127: a longer token is not one. */
const MAX_PREFIX_LENGTH = 128;
/** Distinct prefixes remembered: hostile lines could otherwise make every line a new one. */
const MAX_DISTINCT_PREFIXES = 1000;
/** The report names at most this many other prefixes. */
const PREFIXES_SHOWN = 20;
/** The addresses the report resolves against the pod index. */
export const TOP_ADDRESSES = 10;
const MAX_PRINTED = 160;

const BLANK = /[ \t]/;
const PRINTABLE_TOKEN = /^[\x21-\x7e]+$/;

function isBlankAt(text: string, i: number): boolean {
  return BLANK.test(text.charAt(i));
}

/**
 * Text safe to print on a terminal or in a log: printable ASCII only, cut to a length. The parser's details
 * are escaped already; this is the last guard for anything else (journalctl's stderr, API errors).
 */
export function printable(text: string, max = MAX_PRINTED): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return cut.replace(/[^\x20-\x7e]/g, '?');
}

/** What precedes `IN=` when the LOG rule had no prefix: a syslog tag, or the kernel's `[ uptime]` stamp. */
function isNoPrefix(token: string): boolean {
  return token === '' || token === 'kernel' || token.endsWith(']');
}

/**
 * The prefix of a LOG-target line in text[from, end) (the kernel prints `<prefix>IN=... OUT=...`): the word
 * before `IN=`, or the text glued to it (`DROP:IN=eth0`), without trailing colons. '' when the line is LOG
 * output without a prefix, null when it is no LOG output or its prefix is no printable token.
 */
export function logPrefixAt(text: string, from: number, end: number): string | null {
  for (let at = text.indexOf('IN=', from); at >= 0 && at + 3 <= end; at = text.indexOf('IN=', at + 1)) {
    const out = text.indexOf(' OUT=', at + 3);
    if (out < 0 || out + 5 > end) return null;
    let tokenEnd = at;
    if (at === from || isBlankAt(text, at - 1)) {
      while (tokenEnd > from && isBlankAt(text, tokenEnd - 1)) tokenEnd--;
    } else if (/[A-Z]/.test(text.charAt(at - 1))) {
      // PHYSIN=, a bridge's key, not a prefix glued to IN=.
      continue;
    }
    let start = tokenEnd;
    while (start > from && !isBlankAt(text, start - 1)) start--;
    const token = normalizePrefix(text.slice(start, tokenEnd));
    if (isNoPrefix(token)) return '';
    return token.length <= MAX_PREFIX_LENGTH && PRINTABLE_TOKEN.test(token) ? token : null;
  }
  return null;
}

/** Entries sorted by count (descending), then key, the first `limit` of them. */
export function topCounts(counts: ReadonlyMap<string, number>, limit: number): [string, number][] {
  return [...counts].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0)).slice(0, limit);
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Accumulates the lines of the window; `census()` gives the result. */
export class CensusTally {
  private entries = 0;
  private prefixed = 0;
  private drops = 0;
  private readonly others = new Map<string, number>();
  private readonly invalid = new Map<InvalidReason, { count: number; example: string }>();
  private readonly addresses = new Map<string, number>();

  /** One record of the window and what the agent's parser made of it. */
  add(result: ParseResult, { text, start = 0, end = text.length }: LogRecord): void {
    this.entries++;
    if (result.kind === 'drop') {
      this.prefixed++;
      this.drops++;
      increment(this.addresses, result.drop.src);
      increment(this.addresses, result.drop.dst);
    } else if (result.kind === 'invalid') {
      this.prefixed++;
      const group = this.invalid.get(result.reason);
      if (group === undefined)
        this.invalid.set(result.reason, { count: 1, example: printable(result.detail) });
      else group.count++;
    } else {
      const prefix = logPrefixAt(text, start, end);
      if (prefix === null) return;
      if (this.others.has(prefix) || this.others.size < MAX_DISTINCT_PREFIXES) increment(this.others, prefix);
    }
  }

  census(): LineCensus {
    const otherPrefixes: PrefixCount[] = topCounts(this.others, PREFIXES_SHOWN).map(([prefix, count]) => ({
      prefix,
      count,
    }));
    const invalid: InvalidGroup[] = [...this.invalid]
      .map(([reason, { count, example }]) => ({ reason, count, example }))
      .sort((a, b) => b.count - a.count);
    const addresses: AddressCount[] = topCounts(this.addresses, TOP_ADDRESSES).map(([ip, count]) => ({
      ip,
      count,
    }));
    const { entries, prefixed, drops } = this;
    return { entries, prefixed, drops, otherPrefixes, invalid, addresses };
  }
}
