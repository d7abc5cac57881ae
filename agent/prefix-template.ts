/**
 * IPTABLES_LOG_PREFIX with Calico's placeholders (`%t` tier, `%k` kind, `%n` name, `%p` namespace/name), the
 * same template as Felix's `logPrefix`: its syntax, checked once at start (config.ts) and read by the parser
 * (parser/policy.ts).
 */

export type Placeholder = 't' | 'k' | 'n' | 'p';

/** A template after its leading text: literal runs and placeholders, in order. */
export type Token = { literal: string } | { placeholder: Placeholder };

export interface PrefixTemplate {
  /** The leading text before the first placeholder, trimmed: what a line is searched for. */
  core: string;
  /** What follows the core. */
  tokens: readonly Token[];
}

/** The prefix as configured, without surrounding spaces or trailing colons: the text matched and reported. */
export function normalizePrefix(prefix: string): string {
  return prefix.trim().replace(/:+$/, '').trimEnd();
}

/** The text every line with the prefix holds: a template's leading text, or the whole plain prefix. */
export function prefixCore(prefix: string): string {
  return parseTemplate(prefix)?.core ?? normalizePrefix(prefix);
}

/**
 * The cheap test every line takes: whether the prefix's core occurs in text[start, end) at all. Lines of one
 * block come in order, so one search answers for every line up to the next occurrence: the scan stays
 * linear in the block however rare prefixed lines are.
 */
export class CoreSearch {
  readonly core: string;
  private searchedText = '';
  private searchedFrom = 0;
  /** The first occurrence at or after `searchedFrom` in `searchedText`, or -1. */
  private foundAt = -1;

  constructor(core: string) {
    this.core = core;
  }

  /** The first occurrence of the core in text[start, end), or -1. */
  firstIn(text: string, start: number, end: number): number {
    if (
      text !== this.searchedText ||
      start < this.searchedFrom ||
      (this.foundAt >= 0 && this.foundAt < start)
    ) {
      this.searchedFrom = start;
      this.foundAt = text.indexOf(this.core, start);
    }
    // Kept even when the search stands: `!==` on two distinct strings compares their characters, so
    // keeping an earlier block equal to this one (repetitive lines cut into blocks of one length) would
    // compare the whole block again for every line. The same object compares at once.
    this.searchedText = text;
    return this.foundAt >= 0 && this.foundAt + this.core.length <= end ? this.foundAt : -1;
  }
}

/**
 * What a prefix setting (IPTABLES_LOG_PREFIX, `--prefix`) needs in words, or null when it can be matched:
 * text, and a template that lines can be read with.
 */
export function prefixProblem(prefix: string): string | null {
  if (normalizePrefix(prefix) === '') return 'the --log-prefix text, e.g. calico-packet';
  try {
    parseTemplate(prefix);
    return null;
  } catch (err) {
    return `the --log-prefix text, or Felix's logPrefix template such as "calico-packet %k %p" (${(err as Error).message})`;
  }
}

/** What Felix accepts in logPrefix. */
const ALLOWED = /^[a-zA-Z0-9%: /_-]*$/;
const PLACEHOLDER = /%[tknp]/g;
/**
 * The template in a prefix with placeholders; null for a plain prefix (matched as before). Throws a
 * RangeError naming what is wrong: a template that cannot be matched must stop the agent at start.
 */
export function parseTemplate(prefix: string): PrefixTemplate | null {
  const text = normalizePrefix(prefix);
  const first = text.search(PLACEHOLDER);
  if (first < 0) return null;
  if (!ALLOWED.test(text)) {
    throw new RangeError('a template may hold only letters, digits, %, :, space, / _ and -, as Felix allows');
  }
  const core = text.slice(0, first).trimEnd();
  if (core === '') throw new RangeError('a template must start with text before its first placeholder');
  const tokens: Token[] = [];
  let at = core.length;
  for (const match of text.slice(first).matchAll(PLACEHOLDER)) {
    const start = first + match.index;
    if (start > at) tokens.push({ literal: text.slice(at, start) });
    const previous = tokens.at(-1);
    if (previous !== undefined && 'placeholder' in previous) {
      throw new RangeError(`%${previous.placeholder}%${match[0][1]}: placeholders need text between them`);
    }
    tokens.push({ placeholder: match[0][1] as Placeholder });
    at = start + 2;
  }
  if (at < text.length) tokens.push({ literal: text.slice(at) });
  return { core, tokens };
}
