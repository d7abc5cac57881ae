/** The files behind a journal directory, as journalctl --directory sees them. */

import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** `/var/log/journal` keeps each machine's files in a directory named by its machine ID. */
const MACHINE_ID_DIRECTORY = /^[0-9a-f]{32}$/;
/** Active (`.journal`) and damaged-then-set-aside (`.journal~`) files: journalctl reads both. */
const JOURNAL_FILE = /\.journal~?$/;
/** Where a journal file's header keeps the sequence number of its newest entry (systemd's journal-def.h). */
const TAIL_ENTRY_SEQNUM_OFFSET = 160;

/** The journal files journalctl reads in a directory: those in it and in machine-ID subdirectories. */
export async function journalFilePaths(directory: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    if (entry.isFile() && JOURNAL_FILE.test(entry.name)) files.push(join(directory, entry.name));
    if (entry.isDirectory() && MACHINE_ID_DIRECTORY.test(entry.name)) {
      const sub = join(directory, entry.name);
      const names = await readdir(sub).catch(() => []);
      files.push(...names.filter((name) => JOURNAL_FILE.test(name)).map((name) => join(sub, name)));
    }
  }
  return files;
}

async function tailSeqnum(path: string): Promise<string> {
  const file = await open(path, 'r');
  try {
    const bytes = Buffer.alloc(8);
    const { bytesRead } = await file.read(bytes, 0, 8, TAIL_ENTRY_SEQNUM_OFFSET);
    return bytesRead === 8 ? bytes.readBigUInt64LE().toString() : 'short';
  } finally {
    await file.close();
  }
}

/**
 * What the directory's files hold, in a few bytes per file: each file's name and the sequence number of
 * its newest entry, which journald's writer updates with every entry it appends. Equal answers mean no
 * entry was appended, rotated or removed in between, without asking journalctl; null when the directory
 * cannot be read.
 */
export async function journalTails(directory: string): Promise<string | null> {
  try {
    const paths = (await journalFilePaths(directory)).sort();
    const tails = await Promise.all(paths.map((path) => tailSeqnum(path).catch(() => 'unreadable')));
    return paths.map((path, i) => `${path}:${tails[i]}`).join('\n');
  } catch {
    return null;
  }
}
