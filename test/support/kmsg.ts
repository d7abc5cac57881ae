import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KmsgReader, openKmsgDevice } from '../../agent/sources/kmsg.ts';
import { type KmsgRecord, parseKmsgRecord } from '../../agent/sources/kmsg-record.ts';

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

/** Every record in this machine's real ring buffer, oldest first, read and taken apart as the agent does. */
export function kmsgRecords(): KmsgRecord[] {
  const reader = new KmsgReader(openKmsgDevice('/dev/kmsg'));
  const records: KmsgRecord[] = [];
  try {
    for (let text = reader.next(); text !== null; text = reader.next()) {
      const parsed = parseKmsgRecord(text);
      if (parsed.kind === 'record') records.push(parsed.record);
    }
  } finally {
    reader.close();
  }
  return records;
}

/** The sequence number of the newest record in this machine's real ring buffer. */
export function newestKmsgSequence(): number {
  return kmsgRecords().at(-1)?.sequence ?? -1;
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
