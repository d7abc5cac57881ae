// vitest globalSetup: the programs the suite spawns, found on this machine or installed with apt-get
// when the run is root on a Debian-like machine, so `npm ci && npm test` works on a fresh one. Anything
// else fails in one line naming the package, before a test reports a bare spawn ENOENT.

import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { JOURNAL_REMOTE } from '../support/journal.ts';
import { JOURNALD } from '../support/journald.ts';

export interface Prerequisite {
  /** A command looked up on PATH, or an absolute path. */
  program: string;
  /** The Debian package that ships it. */
  debianPackage: string;
}

export const PREREQUISITES: readonly Prerequisite[] = [
  { program: JOURNAL_REMOTE, debianPackage: 'systemd-journal-remote' },
  { program: 'journalctl', debianPackage: 'systemd' },
  // The test control plane's certificates.
  { program: 'openssl', debianPackage: 'openssl' },
  // The real kernel's drop lines (test/support/kernel-net.ts): namespaces, LOG rules, traffic.
  { program: 'ip', debianPackage: 'iproute2' },
  { program: 'iptables', debianPackage: 'iptables' },
  { program: 'ip6tables', debianPackage: 'iptables' },
  { program: 'nft', debianPackage: 'nftables' },
  { program: 'ping', debianPackage: 'iputils-ping' },
  { program: 'dmesg', debianPackage: 'util-linux' },
  // A real journald in a mount namespace of its own (test/support/journald.ts), and forged entries for it.
  { program: JOURNALD, debianPackage: 'systemd' },
  { program: 'unshare', debianPackage: 'util-linux' },
  { program: 'nsenter', debianPackage: 'util-linux' },
  { program: 'setpriv', debianPackage: 'util-linux' },
  { program: 'logger', debianPackage: 'bsdutils' },
];

export interface Machine {
  /** Whether `program` (a command name or an absolute path) can be executed. */
  has(program: string): boolean;
  root: boolean;
}

export type Decision =
  | { action: 'none' }
  | { action: 'install'; packages: string[]; line: string }
  | { action: 'fail'; line: string };

export function decide(needs: readonly Prerequisite[], machine: Machine): Decision {
  const missing = needs.filter((need) => !machine.has(need.program));
  if (missing.length === 0) return { action: 'none' };
  const packages = [...new Set(missing.map((need) => need.debianPackage))];
  const programs = missing.map((need) => need.program).join(', ');
  if (machine.root && machine.has('apt-get')) {
    return {
      action: 'install',
      packages,
      line: `test set-up: ${programs} missing; installing the Debian package(s) ${packages.join(' ')} with apt-get`,
    };
  }
  const how = machine.has('apt-get')
    ? `run as root: apt-get install -y ${packages.join(' ')}`
    : `install it with your system's package manager`;
  return {
    action: 'fail',
    line: `test set-up: ${programs} missing, from the Debian package(s) ${packages.join(' ')}; ${how}`,
  };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function localMachine(env: NodeJS.ProcessEnv = process.env): Machine {
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  return {
    has: (program) =>
      program.includes('/') ? executable(program) : dirs.some((dir) => executable(join(dir, program))),
    root: process.getuid?.() === 0,
  };
}

function aptGet(args: string[]): void {
  const run = spawnSync('apt-get', args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (run.status !== 0) {
    throw new Error(
      `test set-up: apt-get ${args.join(' ')} failed (${run.status ?? run.signal}): ${run.stderr.trim()}`,
    );
  }
}

export default function setup(): void {
  const decision = decide(PREREQUISITES, localMachine());
  if (decision.action === 'none') return;
  if (decision.action === 'fail') throw new Error(decision.line);
  console.log(decision.line);
  aptGet(['update', '-qq']);
  aptGet(['install', '-y', '-qq', '--no-install-recommends', ...decision.packages]);
  if (decide(PREREQUISITES, localMachine()).action !== 'none') {
    throw new Error(
      `test set-up: apt-get installed ${decision.packages.join(' ')}, yet a program is still missing`,
    );
  }
}
