// Two network namespaces joined by a veth pair, standing in for two pods, so that the real kernel's LOG
// target (iptables, ip6tables) and nftables `log` print real drop lines. Needs root, iproute2, iptables,
// nftables and ping (test/setup/prerequisites.ts installs them). Addresses and interface names are unique to
// the run, so lines that earlier runs left in the kernel's ring buffer never count here.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Side {
  ns: string;
  /** The veth end inside the namespace: the IN= of every line logged on this side. */
  device: string;
  ipv4: string;
  ipv6: string;
}

/** A namespace other than the first logs only with this set (kernel's nf_log_all_netns). */
const LOG_ALL_NETNS = '/proc/sys/net/netfilter/nf_log_all_netns';
/** Users of the sysctl by pid, and its value before the first: restored when the last user leaves. */
const USERS = '/run/kube-iptables-tailer-tests/nf-log-all-netns';
const NAME_PREFIX = 'kit';

function run(command: string, args: string[], input?: string): string {
  return execFileSync(command, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Whether a process runs: a test run that was killed leaves things that the next run sweeps. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Namespaces of runs whose process is gone (killed before it cleaned up). */
function sweepLeftovers(): void {
  const names = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of names.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const pid = Number(/^kit(\d+)[a-z0-9]+[ab]$/.exec(name)?.[1]);
    if (Number.isInteger(pid) && !alive(pid)) spawnSync('ip', ['netns', 'del', name]);
  }
}

function joinLogAllNetns(): void {
  mkdirSync(USERS, { recursive: true });
  const original = join(USERS, 'original');
  const users = readdirSync(USERS).filter((name) => name !== 'original' && alive(Number(name)));
  if (users.length === 0) writeFileSync(original, readFileSync(LOG_ALL_NETNS, 'utf8'));
  writeFileSync(join(USERS, String(process.pid)), '');
  writeFileSync(LOG_ALL_NETNS, '1');
}

function leaveLogAllNetns(): void {
  rmSync(join(USERS, String(process.pid)), { force: true });
  const others = readdirSync(USERS).filter((name) => name !== 'original' && alive(Number(name)));
  if (others.length > 0) return;
  const original = join(USERS, 'original');
  try {
    writeFileSync(LOG_ALL_NETNS, readFileSync(original, 'utf8'));
  } finally {
    rmSync(USERS, { recursive: true, force: true });
  }
}

export class KernelNet {
  readonly client: Side;
  readonly server: Side;
  private stopped = false;
  private joined = false;
  private readonly onExit = () => this.stop();

  private constructor(client: Side, server: Side) {
    this.client = client;
    this.server = server;
  }

  /** Makes both namespaces, addressed and up; cleans up whatever it made if any step fails. */
  static start(): KernelNet {
    if (process.getuid?.() !== 0)
      throw new Error('the real kernel tests must run as root (network namespaces, netfilter rules)');
    sweepLeftovers();
    const id = `${NAME_PREFIX}${process.pid}${Math.random().toString(36).slice(2, 6)}`;
    const a = Math.floor(Math.random() * 256);
    const b = Math.floor(Math.random() * 64) * 4;
    // Non-zero groups, so the text is already the canonical (RFC 5952) form the agent prints.
    const hex = (1 + Math.floor(Math.random() * 0xfffe)).toString(16);
    const side = (end: 'a' | 'b', host: number): Side => ({
      ns: `${id}${end}`,
      device: `kv${id.slice(-4)}${end}`,
      ipv4: `10.${200 + (a % 50)}.${b >> 2}.${host}`,
      ipv6: `fd00:${hex}:${(a + 1).toString(16)}::${host}`,
    });
    const net = new KernelNet(side('a', 1), side('b', 2));
    process.once('exit', net.onExit);
    try {
      for (const s of [net.client, net.server]) run('ip', ['netns', 'add', s.ns]);
      const { client, server } = net;
      run('ip', [
        'link',
        'add',
        client.device,
        'netns',
        client.ns,
        'type',
        'veth',
        'peer',
        'name',
        server.device,
        'netns',
        server.ns,
      ]);
      for (const s of [client, server]) {
        run('ip', ['-n', s.ns, 'addr', 'add', `${s.ipv4}/24`, 'dev', s.device]);
        run('ip', ['-n', s.ns, 'addr', 'add', `${s.ipv6}/64`, 'dev', s.device, 'nodad']);
        run('ip', ['-n', s.ns, 'link', 'set', s.device, 'up']);
        run('ip', ['-n', s.ns, 'link', 'set', 'lo', 'up']);
      }
      joinLogAllNetns();
      net.joined = true;
    } catch (err) {
      net.stop();
      throw err;
    }
    return net;
  }

  /** iptables (or ip6tables) in the server's namespace. */
  iptables(command: 'iptables' | 'ip6tables', args: string[]): void {
    run('ip', ['netns', 'exec', this.server.ns, command, ...args]);
  }

  /**
   * As Calico renders a Log rule before a Deny: a LOG rule with the prefix at level 5, then DROP, for the
   * packets `match` selects (e.g. `-p tcp --dport 12865`), in the server's INPUT chain.
   */
  logAndDrop(command: 'iptables' | 'ip6tables', match: string[], prefix = 'calico-packet: '): void {
    this.iptables(command, [
      '-A',
      'INPUT',
      ...match,
      '-j',
      'LOG',
      '--log-prefix',
      prefix,
      '--log-level',
      '5',
    ]);
    this.iptables(command, ['-A', 'INPUT', ...match, '-j', 'DROP']);
  }

  /** An nftables script loaded in the server's namespace. */
  nft(script: string): void {
    run('ip', ['netns', 'exec', this.server.ns, 'nft', '-f', '-'], script);
  }

  /** A TCP connection attempt (its SYN) from the client to the server; dropped traffic just times out. */
  tcp(ip: string, port: number): Promise<void> {
    return this.fromClient(['timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port}`]);
  }

  udp(ip: string, port: number): Promise<void> {
    return this.fromClient(['bash', '-c', `echo drop > /dev/udp/${ip}/${port}`]);
  }

  ping(ip: string): Promise<void> {
    return this.fromClient(['ping', '-c', '1', '-W', '1', ip]);
  }

  private fromClient(args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', this.client.ns, ...args], { stdio: 'ignore' });
      child.once('error', reject);
      child.once('close', () => resolve());
    });
  }

  /** The kernel's messages logged in the server's namespace so far (dmesg), oldest first. */
  serverLines(): string[] {
    // No blank before IN= when the kernel cut the prefix into it.
    const marker = `IN=${this.server.device} `;
    // --kernel: the kernel's own facility only, not what a process wrote to /dev/kmsg.
    return run('dmesg', ['--kernel', '--notime'])
      .split('\n')
      .filter((line) => line.includes(marker));
  }

  /** Removes the namespaces (their veth and rules with them) and restores the sysctl; idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    process.removeListener('exit', this.onExit);
    for (const s of [this.client, this.server]) spawnSync('ip', ['netns', 'del', s.ns]);
    if (this.joined) leaveLogAllNetns();
  }
}
