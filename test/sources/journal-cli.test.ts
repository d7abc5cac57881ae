import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendJournal, calicoMessage, MACHINE_ID, tempDir } from '../support/journal.ts';

const run = promisify(execFile);
const repo = new URL('../..', import.meta.url).pathname;
const T0 = 1_775_414_502_123_456;

function parse(...args: string[]) {
  return run(process.execPath, ['agent/cli.ts', 'parse', ...args], {
    cwd: repo,
    env: { ...process.env, IPTABLES_LOG_PREFIX: 'calico-packet' },
  });
}

describe('parse --journal DIR', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await tempDir('journal-cli');
    await appendJournal(join(dir, MACHINE_ID, 'system.journal'), [
      { message: calicoMessage(4), realtimeUs: T0, hostname: 'gke-cluster-k8s-default-pool-d4371b02-9s00' },
      { message: calicoMessage(5), realtimeUs: T0 + 1, transport: 'syslog', identifier: 'kernel' },
      { message: 'eth0: renamed from tmp3f1c2', realtimeUs: T0 + 2 },
      { message: 'calico-packet: IN=eth0 OUT= SRC=nonsense', realtimeUs: T0 + 3 },
    ]);
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('prints the drops of kernel-transport entries only, with journal time and host', async () => {
    const { stdout, stderr } = await parse('--journal', dir);
    expect(
      stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toEqual([
      expect.objectContaining({
        time: '2026-04-05T18:41:42.123Z',
        host: 'gke-cluster-k8s-default-pool-d4371b02-9s00',
        prefix: 'calico-packet',
        src: '10.4.0.4',
        dst: '10.4.1.6',
        proto: 'TCP',
        srcPort: 1028,
        dstPort: 12865,
        in: 'cali6e7bb88b982',
        out: 'eth0',
        mac: 'ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00',
        ttl: 63,
      }),
    ]);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('summarises with --stats', async () => {
    const { stdout } = await parse('--journal', dir, '--stats');
    expect(JSON.parse(stdout)).toMatchObject({ lines: 3, drops: 1, invalid: 1 });
  });

  it('exits 1 with a reason when the journal cannot be read', async () => {
    await expect(parse('--journal', join(dir, 'missing'))).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('cannot read journal'),
    });
  });
});
