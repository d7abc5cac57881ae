/**
 * Log prefix matching. iptables prints `--log-prefix` verbatim right before `IN=`, so users write
 * `calico-packet`, `calico-packet:` or `DROP:` (glued: `DROP:IN=eth0`); all must match the same lines,
 * and none may match a longer word such as `xcalico-packet` or `calico-packets`.
 */

const COLON = 58;

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

/** True when the text after a match ends the token: an optional ':' then a blank, `IN=` or the end. */
function endsToken(text: string, after: number, end: number): boolean {
  let i = after;
  if (i < end && text.charCodeAt(i) === COLON) i++;
  return i >= end || isBlank(text.charCodeAt(i)) || text.startsWith('IN=', i);
}

/** findPrefix's answer for a line without the prefix. */
export const NO_PREFIX = -1;
/** findPrefix's answer for a line whose only prefix has a control character glued before it: no drop, but no line to skip silently either. */
export const PREFIX_AFTER_CONTROL = -2;

function isControl(c: number): boolean {
  return c < 32 || c === 127;
}

/**
 * Finds the first whole-token occurrence of `core` in text[from, end) and returns the index where the
 * fields after it begin, NO_PREFIX, or PREFIX_AFTER_CONTROL. `from` is a token boundary (a line start
 * or the end of the syslog header). Callers check `text.indexOf(core)` first, so most lines never get
 * here; one that knows where `core` first occurs at or after `from` passes it as `first` to spare the
 * search.
 */
export function findPrefix(
  text: string,
  core: string,
  from: number,
  end: number,
  first: number = text.indexOf(core, from),
): number {
  let afterControl = false;
  for (let at = first; at >= 0 && at + core.length <= end; at = text.indexOf(core, at + 1)) {
    const after = at + core.length;
    if (!endsToken(text, after, end)) continue;
    if (at > from && !isBlank(text.charCodeAt(at - 1))) {
      afterControl ||= isControl(text.charCodeAt(at - 1));
      continue;
    }
    return after < end && text.charCodeAt(after) === COLON ? after + 1 : after;
  }
  return afterControl ? PREFIX_AFTER_CONTROL : NO_PREFIX;
}
