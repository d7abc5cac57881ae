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
