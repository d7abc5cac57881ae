/**
 * The file source's edge: a log file line's syslog header read into a record the parser takes as it takes a
 * journal entry. Timestamp styles are tested through the parser (test/parser/parse.test.ts).
 */

import { describe, expect, it } from 'vitest';
import { MAX_LINE_LENGTH } from '../../agent/lines.ts';
import { SyslogReader } from '../../agent/sources/syslog/record.ts';
import { TCP4 } from '../parser/samples.ts';

const NOW = Date.UTC(2026, 3, 6, 12);
const STAMP = '2026-04-05T20:41:42Z';
const TIME = Date.UTC(2026, 3, 5, 20, 41, 42);

function reader(prefix = 'calico-packet'): SyslogReader {
  return new SyslogReader({ prefix, timeLayout: null, now: () => NOW });
}

/** A record as its message and what the header said: what the parser reads of it. */
function read(line: string, prefix?: string): object {
  const { text, start = 0, end = text.length, ...rest } = reader(prefix).record(line);
  return { message: text.slice(start, end), ...rest };
}

describe('SyslogReader', () => {
  it('gives the message after the kernel tag, dated and named by the header', () => {
    expect(read(`${STAMP} node-1 kernel: calico-packet: ${TCP4}`)).toEqual({
      message: ` calico-packet: ${TCP4}`,
      time: TIME,
      host: 'node-1',
    });
  });

  it('keeps a message that begins with the prefix where a tag would stand, also with a template prefix', () => {
    expect(read(`${STAMP} node-1 calico-packet: ${TCP4}`)).toEqual({
      message: ` calico-packet: ${TCP4}`,
      time: TIME,
      host: 'node-1',
    });
    expect(read(`${STAMP} node-1 calico-packet: ${TCP4}`, 'calico-packet %k %p')).not.toHaveProperty(
      'untrustedTag',
    );
  });

  it('names each line’s host, also when it changes to one of the same length', () => {
    const syslog = reader();
    const hostOf = (line: string) => syslog.record(line).host;
    const first = hostOf(`${STAMP} node-1 kernel: a`);
    expect(hostOf(`${STAMP} node-1 kernel: b`)).toBe(first);
    expect(hostOf(`${STAMP} node-12 kernel: c`)).toBe('node-12');
    expect(hostOf(`${STAMP} node-2 kernel: d`)).toBe('node-2');
  });

  it('has an empty host when the daemon wrote none', () => {
    expect(read(`${STAMP} kernel: calico-packet: ${TCP4}`)).toEqual({
      message: ` calico-packet: ${TCP4}`,
      time: TIME,
      host: '',
    });
  });

  it('names a tag other than the kernel’s, which any process can write', () => {
    for (const tag of ['sshd[42]:', 'kernel[1]:', 'Kernel:', 'logger:']) {
      expect(read(`${STAMP} node-1 ${tag} calico-packet: ${TCP4}`)).toEqual({
        message: ` calico-packet: ${TCP4}`,
        time: TIME,
        host: 'node-1',
        untrustedTag: tag,
      });
    }
  });

  it('hands on a line without a readable stamp, or over the length limit, whole and undated', () => {
    for (const line of [
      `node-1 kernel: calico-packet: ${TCP4}`,
      `${STAMP} ${'x'.repeat(MAX_LINE_LENGTH)}`,
      '',
    ]) {
      expect(read(line)).toEqual({ message: line, time: Number.NaN, host: null });
    }
  });

  it('reads a line given as a span of a larger text', () => {
    const line = `${STAMP} node-1 kernel: calico-packet: ${TCP4}`;
    const text = `before\n${line}\nafter`;
    const { start, end, ...rest } = reader().record(text, 7, 7 + line.length);
    expect(text.slice(start, end)).toBe(` calico-packet: ${TCP4}`);
    expect(rest).toEqual({ text, time: TIME, host: 'node-1' });
  });
});
