/** How the kernel escapes a /dev/kmsg record's text: every byte below 0x20, from 0x7f, and the backslash. */
export function kmsgEscaped(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    out +=
      byte < 0x20 || byte >= 0x7f || byte === 0x5c
        ? `\\x${byte.toString(16).padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}
