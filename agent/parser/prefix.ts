/**
 * Log prefix matching. iptables prints `--log-prefix` verbatim right before `IN=`, so users write
 * `calico-packet`, `calico-packet:` or `DROP:` (glued: `DROP:IN=eth0`); all must match the same lines,
 * and none may match a longer word such as `xcalico-packet` or `calico-packets`.
 */

const COLON = 58;

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

/** The prefix as configured, without surrounding spaces or trailing colons: the text matched and reported. */
export function normalizePrefix(prefix: string): string {
  return prefix.trim().replace(/:+$/, '').trimEnd();
}

/** True when the text after a match ends the token: an optional ':' then a blank, `IN=` or the end. */
function endsToken(text: string, after: number, end: number): boolean {
  let i = after;
  if (i < end && text.charCodeAt(i) === COLON) i++;
  return i >= end || isBlank(text.charCodeAt(i)) || text.startsWith('IN=', i);
}

/**
 * Finds the first whole-token occurrence of `core` in text[from, end) and returns the index where the
 * fields after it begin, or -1. `from` is a token boundary (a line start or the end of the syslog
 * header). Callers check `text.indexOf(core)` first, so most lines never get here; one that knows
 * where `core` first occurs at or after `from` passes it as `first` to spare the search.
 */
export function findPrefix(
  text: string,
  core: string,
  from: number,
  end: number,
  first: number = text.indexOf(core, from),
): number {
  for (let at = first; at >= 0 && at + core.length <= end; at = text.indexOf(core, at + 1)) {
    if (at > from && !isBlank(text.charCodeAt(at - 1))) continue;
    const after = at + core.length;
    if (!endsToken(text, after, end)) continue;
    return after < end && text.charCodeAt(after) === COLON ? after + 1 : after;
  }
  return -1;
}
