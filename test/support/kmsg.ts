import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KmsgReader, openKmsgDevice } from '../../agent/sources/kmsg.ts';
import { kmsgSequence } from '../../agent/sources/kmsg-record.ts';

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

/** The sequence number of the newest record in this machine's real ring buffer, read as the agent reads it. */
export function newestKmsgSequence(): number {
  const reader = new KmsgReader(openKmsgDevice('/dev/kmsg'));
  let newest = -1;
  try {
    for (let text = reader.next(); text !== null; text = reader.next()) newest = kmsgSequence(text) ?? newest;
  } finally {
    reader.close();
  }
  return newest;
}

/**
 * Writes into `directory` the checkpoint a KMSG_PATH agent resumes from, at the real buffer's newest record:
 * it then reads only what the kernel logs after this, never what earlier tests left in the buffer.
 */
export async function kmsgCheckpointAtNewest(directory: string): Promise<void> {
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  await mkdir(directory, { recursive: true });
  await writeFile(
    join(directory, 'kmsg.position.json'),
    JSON.stringify({ bootId, sequence: newestKmsgSequence() }),
  );
}
