/** The `parse` command as a real process, as the acceptance checks call it. */

import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ICMP6, kernLine, TCP4, UDP4 } from './samples.ts';

const repo = new URL('../..', import.meta.url).pathname;
const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';
const node = join(repo, 'node_modules/.bin/node');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node agent/cli.ts parse ARGS` in UTC with no agent variables but the given ones. */
function parseCommand(
  args: string[],
  options: { input?: string | Buffer; env?: Record<string, string> } = {},
) {
  const env: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', ...options.env };
  if (options.env?.IPTABLES_LOG_PREFIX === undefined) delete env.IPTABLES_LOG_PREFIX;
  if (options.env?.PACKET_DROP_LOG_TIME_LAYOUT === undefined) delete env.PACKET_DROP_LOG_TIME_LAYOUT;
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(node, ['agent/cli.ts', 'parse', ...args], { cwd: repo, env });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() }),
    );
    child.stdin.end(options.input ?? '');
  });
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const SAMPLE = [
  `Apr 05 20:41:42 gke-node-1 kernel: calico-packet: ${TCP4}`,
  'Apr 05 20:41:43 gke-node-1 kernel: IPv6: ADDRCONF(NETDEV_CHANGE): cali6e7bb88b982: link becomes ready',
  kernLine(ICMP6),
  kernLine(UDP4.replace('SRC=10.4.1.6', 'SRC=10.4.1.256')),
  kernLine(TCP4, 'xcalico-packet:'),
].join('\n');

let dir: string;
let sample: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parse-command-'));
  sample = join(dir, 'kern.log');
  await writeFile(sample, `${SAMPLE}\n`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('parse command', () => {
  it('prints one JSON object per drop with the contract fields', async () => {
    const run = await parseCommand([sample]);
    expect(run.code).toBe(0);
    const drops = jsonLines(run.stdout);
    expect(drops).toHaveLength(2);
    expect(drops[0]).toMatchObject({
      host: 'gke-node-1',
      prefix: 'calico-packet',
      src: '10.4.0.4',
      dst: '10.4.1.6',
      proto: 'TCP',
      srcPort: 60353,
      dstPort: 12865,
      in: 'cali6e7bb88b982',
      out: 'eth0',
      mac: 'ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00',
      ttl: 63,
    });
    expect(drops[0]!.time).toMatch(/^\d{4}-04-05T20:41:42\.000Z$/);
    expect(drops[1]).toEqual({
      time: '2026-04-05T18:41:42.123Z',
      host: 'node-1',
      prefix: 'calico-packet',
      src: 'fd00:10:244::5',
      dst: '2001:db8::1:0:0:1',
      ipVersion: 6,
      proto: 'ICMPv6',
      srcPort: null,
      dstPort: null,
      in: 'cali6e7bb88b982',
      out: '',
      mac: 'ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:86:dd',
      ttl: 64,
      length: 104,
      icmpType: 128,
      icmpCode: 0,
    });
  });

  it('reports invalid prefixed lines on stderr with file, line and reason', async () => {
    const run = await parseCommand([sample]);
    expect(run.stderr).toBe(`${sample}:4: bad_address: SRC="10.4.1.256"\n`);
    expect(run.stdout).not.toContain('10.4.1.256');
  });

  it.each([[[]], [['-']]])('reads stdin with arguments %j', async (args) => {
    const run = await parseCommand(args, { input: SAMPLE });
    expect(run.code).toBe(0);
    expect(jsonLines(run.stdout).map((drop) => drop.src)).toEqual(['10.4.0.4', 'fd00:10:244::5']);
    expect(run.stderr).toBe('<stdin>:4: bad_address: SRC="10.4.1.256"\n');
  });

  it('prints only a summary with --stats', async () => {
    const run = await parseCommand(['--stats', sample, sample]);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0]!) as Record<string, number>;
    expect(summary).toMatchObject({ lines: 10, drops: 4, invalid: 2, skipped: 4 });
    expect(summary.seconds).toBeGreaterThanOrEqual(0);
    // The invalid lines are counted in the summary, not listed.
    expect(run.stderr).toBe('');
  });

  it('exits 1 for an input it cannot read, after reading the others', async () => {
    const missing = join(dir, 'missing.log');
    const run = await parseCommand([missing, sample, dir]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot read ${missing}`);
    expect(run.stderr).toContain(`cannot read ${dir}`);
    expect(jsonLines(run.stdout)).toHaveLength(2);
  });

  it('takes the prefix from --prefix, then IPTABLES_LOG_PREFIX', async () => {
    const glued = `2026-04-05T20:41:42Z node-1 kernel: DROP:${TCP4}\n`;
    const fromFlag = await parseCommand(['--prefix', 'DROP:'], { input: glued });
    const fromEnv = await parseCommand([], { input: glued, env: { IPTABLES_LOG_PREFIX: 'DROP' } });
    const otherwise = await parseCommand([], { input: glued });
    expect(jsonLines(fromFlag.stdout)).toMatchObject([{ prefix: 'DROP', in: 'cali6e7bb88b982' }]);
    expect(jsonLines(fromEnv.stdout)).toMatchObject([{ prefix: 'DROP' }]);
    expect(otherwise.stdout).toBe('');
    const badEnv = await parseCommand(['--prefix', 'DROP'], {
      input: glued,
      env: { IPTABLES_LOG_PREFIX: ' : ' },
    });
    expect(badEnv.code).toBe(0);
    expect(jsonLines(badEnv.stdout)).toMatchObject([{ prefix: 'DROP' }]);
    expect((await parseCommand([], { input: glued, env: { IPTABLES_LOG_PREFIX: ' : ' } })).code).toBe(2);
  });

  it('tries PACKET_DROP_LOG_TIME_LAYOUT before the built-in styles', async () => {
    const input = `05/04/2026 20:41:42 node-1 kernel: calico-packet: ${TCP4}\n${kernLine(TCP4)}\n`;
    const run = await parseCommand([], {
      input,
      env: { PACKET_DROP_LOG_TIME_LAYOUT: '02/01/2006 15:04:05' },
    });
    expect(jsonLines(run.stdout).map((drop) => drop.time)).toEqual([
      '2026-04-05T20:41:42.000Z',
      '2026-04-05T18:41:42.123Z',
    ]);
  });

  it('rejects unknown options and an empty prefix with exit 2', async () => {
    expect((await parseCommand(['--bogus'])).code).toBe(2);
    expect((await parseCommand(['--prefix', ' : '])).code).toBe(2);
  });

  it('reads the policy with a template --prefix, and refuses a template no line fits in one line', async () => {
    const input = kernLine(TCP4).replace('calico-packet: ', 'calico-packet knp web/deny: ');
    const run = await parseCommand(['--prefix', 'calico-packet %k %p'], { input });
    expect(jsonLines(run.stdout).map((drop) => drop.policy)).toEqual([
      { tier: null, kind: 'KubernetesNetworkPolicy', namespace: 'web', name: 'deny', cut: false },
    ]);
    const bad = await parseCommand(['--prefix', 'calico-packet %k%p']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'kube-iptables-tailer: --prefix: expected the --log-prefix text, or Felix\'s logPrefix template such as "calico-packet %k %p" (%k%p: placeholders need text between them)\n',
    );
  });

  it('handles CRLF line ends and a last line without a newline', async () => {
    const run = await parseCommand([], { input: `${kernLine(TCP4)}\r\n${kernLine(UDP4)}` });
    expect(jsonLines(run.stdout).map((drop) => drop.dstPort)).toEqual([12865, 53]);
  });

  it('reads large input across chunks, reporting an overlong line by its number', async () => {
    const lines = Array.from({ length: 60_000 }, (_, i) =>
      i % 3 === 0
        ? `Apr 05 20:41:42 node-1 kernel: something else ${i}`
        : kernLine(TCP4.replace('SPT=60353', `SPT=${i}`)),
    );
    lines[40_000] = `${kernLine(TCP4)} ${'A'.repeat(100_000)}`;
    const file = join(dir, 'large.log');
    await writeFile(file, `${lines.join('\n')}\n`);
    const run = await parseCommand([file]);
    const drops = jsonLines(run.stdout);
    expect(drops).toHaveLength(39_999);
    expect(drops.at(-1)!.srcPort).toBe(59_999);
    expect(run.stderr).toBe(`${file}:40001: too_long: 16385 characters\n`);
    const stats = await parseCommand(['--stats'], { input: `${lines.join('\n')}\n` });
    expect(JSON.parse(stats.stdout)).toMatchObject({
      lines: 60_000,
      drops: 39_999,
      invalid: 1,
      skipped: 20_000,
    });
  });

  it('parses a file large enough for worker threads in order, numbering lines across segments', async () => {
    // Over 64 MiB, so parsed in 8 MiB segments by worker threads: mostly other kernel lines, a drop
    // every 100,000 lines and a bad port every 333,333, which fall in different segments.
    const filler = 'Apr 05 20:41:42 node-1 kernel: eth0: link is up, 10 Gbps full duplex';
    const count = 1_100_000;
    const lines = new Array<string>(count).fill(filler);
    for (let i = 0; i < count; i += 100_000)
      lines[i] = kernLine(TCP4.replace('SPT=60353', `SPT=${i / 100_000}`));
    for (let i = 333_333; i < count; i += 333_333)
      lines[i] = kernLine(UDP4.replace('SPT=41000', 'SPT=99999'));
    const file = join(dir, 'huge.log');
    await writeFile(file, `${lines.join('\n')}\n`);
    const run = await parseCommand([file]);
    expect(run.code).toBe(0);
    expect(jsonLines(run.stdout).map((drop) => drop.srcPort)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(run.stderr).toBe(
      [333_334, 666_667, 1_000_000].map((line) => `${file}:${line}: bad_port: SPT="99999"\n`).join(''),
    );
    const stats = await parseCommand([file, '--stats']);
    expect(JSON.parse(stats.stdout)).toMatchObject({ lines: count, drops: 11, invalid: 3 });
  });

  it.skipIf(!existsSync(JOURNAL_REMOTE))(
    'reads the kernel entries of a journal directory with --journal',
    async () => {
      const journal = join(dir, 'journal');
      await mkdir(journal);
      const entry = (message: string, transport: string, micros: number): string =>
        `__REALTIME_TIMESTAMP=${micros}\n__MONOTONIC_TIMESTAMP=1\n_BOOT_ID=0123456789abcdef0123456789abcdef\n` +
        `_TRANSPORT=${transport}\n_HOSTNAME=node-1\nSYSLOG_IDENTIFIER=kernel\nMESSAGE=${message}\n\n`;
      const entries = [
        entry(`calico-packet: ${TCP4}`, 'kernel', 1_775_421_702_123_456),
        entry(
          `calico-packet: ${TCP4.replace('SRC=10.4.0.4', 'SRC=10.4.0.999')}`,
          'kernel',
          1_775_421_703_000_000,
        ),
        // Any process can claim SYSLOG_IDENTIFIER=kernel; only the kernel transport counts.
        entry(`calico-packet: ${TCP4}`, 'syslog', 1_775_421_704_000_000),
        entry('eth0: link up', 'kernel', 1_775_421_705_000_000),
      ];
      execFileSync(JOURNAL_REMOTE, ['-o', join(journal, 'x.journal'), '-'], {
        input: entries.join(''),
        stdio: 'pipe',
      });
      const run = await parseCommand(['--journal', journal]);
      expect(run.code).toBe(0);
      expect(jsonLines(run.stdout)).toMatchObject([
        { time: '2026-04-05T20:41:42.123Z', host: 'node-1', src: '10.4.0.4' },
      ]);
      expect(run.stderr).toBe(`${journal}:2: bad_address: SRC="10.4.0.999"\n`);
      const stats = await parseCommand(['--journal', journal, '--stats']);
      expect(JSON.parse(stats.stdout)).toMatchObject({ lines: 3, drops: 1, invalid: 1, skipped: 1 });
      expect((await parseCommand(['--journal', join(dir, 'no-journal-here')])).code).toBe(1);
    },
  );
});
