import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decide, localMachine, type Machine, PREREQUISITES } from './prerequisites.ts';

function machine(present: string[], root: boolean): Machine {
  return { has: (program) => present.includes(program), root };
}

const everything = PREREQUISITES.map((need) => need.program);
const withoutRemote = everything.filter((program) => program !== '/lib/systemd/systemd-journal-remote');

describe('test prerequisites', () => {
  it('does nothing when every program is present', () => {
    expect(decide(PREREQUISITES, machine(everything, false))).toEqual({ action: 'none' });
  });

  it('installs the missing package with apt-get as root, saying so in one line', () => {
    const decision = decide(PREREQUISITES, machine([...withoutRemote, 'apt-get'], true));
    expect(decision).toEqual({
      action: 'install',
      packages: ['systemd-journal-remote'],
      line: 'test set-up: /lib/systemd/systemd-journal-remote missing; installing the Debian package(s) systemd-journal-remote with apt-get',
    });
  });

  it('installs each package once when it ships several missing programs', () => {
    const needs = [...PREREQUISITES, { program: 'systemd-cat', debianPackage: 'systemd' }];
    const decision = decide(
      needs,
      machine(['apt-get', ...everything.filter((p) => p !== 'journalctl')], true),
    );
    expect(decision).toMatchObject({ action: 'install', packages: ['systemd'] });
    // iptables ships both iptables and ip6tables.
    const firewall = decide(
      PREREQUISITES,
      machine(['apt-get', ...everything.filter((p) => p !== 'iptables' && p !== 'ip6tables')], true),
    );
    expect(firewall).toMatchObject({ action: 'install', packages: ['iptables'] });
  });

  it('fails naming the package and the apt-get command when not root', () => {
    expect(decide(PREREQUISITES, machine([...withoutRemote, 'apt-get'], false))).toEqual({
      action: 'fail',
      line: 'test set-up: /lib/systemd/systemd-journal-remote missing, from the Debian package(s) systemd-journal-remote; run as root: apt-get install -y systemd-journal-remote',
    });
  });

  it('fails naming the package when there is no apt-get, even as root', () => {
    const decision = decide(PREREQUISITES, machine(withoutRemote, true));
    expect(decision).toEqual({
      action: 'fail',
      line: "test set-up: /lib/systemd/systemd-journal-remote missing, from the Debian package(s) systemd-journal-remote; install it with your system's package manager",
    });
  });

  it('finds commands on PATH and absolute paths on the real machine', async () => {
    const here = localMachine({ PATH: '/nonexistent:/bin:/usr/bin' });
    expect(here.has('sh')).toBe(true);
    expect(here.has('/bin/sh')).toBe(true);
    expect(here.has('no-such-program-here')).toBe(false);
    expect(localMachine({ PATH: '/nonexistent' }).has('sh')).toBe(false);
    // Not executable: a file, refused as a program.
    const plain = join(await mkdtemp(join(tmpdir(), 'prerequisites-')), 'plain');
    await writeFile(plain, '', { mode: 0o644 });
    expect(here.has(plain)).toBe(false);
  });
});
