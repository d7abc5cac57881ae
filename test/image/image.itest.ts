// Builds the real Dockerfile with buildah (no Docker daemon, no registry: the base image is made locally
// by build-base.sh) and runs the agent's CLI inside the image the way the DaemonSet does: uid 0, every
// capability dropped, the node's journal mounted read-only at /var/log/journal; and as a user other than
// root that has the journal's group. The journals are written by this machine's systemd-journal-remote and
// read by the image's journalctl (Debian 13's systemd 257).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const IMAGE = 'localhost/kube-iptables-tailer:test';
const CONTAINER = 'kube-iptables-tailer-image-test';
const BUILDAH = ['--storage-driver', 'vfs'];
const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';
const MACHINE_ID = '5f0c2a9e3b7d4e1f8a6b9c0d1e2f3a4b';
/** Neither root's group nor systemd-journal's on any distribution: only the owner bits can grant access. */
const FOREIGN_GID = 4242;
/** The DaemonSet's user (root, every capability dropped), and the image's own user (README, Security). */
const ROOT_USER = '0:0';
const IMAGE_USER = '1000:1000';
/** The image's user with the journal's group, as runAsGroup (or supplementalGroups) gives it on a node. */
const JOURNAL_GROUP_USER = `1000:${FOREIGN_GID}`;
/** The variables the CLI reads, fixed on both sides so the host's environment cannot leak in. */
const CLI_ENV = { TZ: 'UTC', NODE_ENV: 'production' };

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(
  command: string,
  args: readonly string[],
  options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new Error(`${command} is not installed or not in PATH`) : error),
    );
    child.once('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    // A command that never reads its stdin may exit before the input is written.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

function tail(text: string, lines = 60): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function mustExec(command: string, args: readonly string[], input?: string): Promise<string> {
  const result = await exec(command, args, input === undefined ? {} : { input });
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited with ${result.code}:\n${tail(result.stderr + result.stdout)}`,
    );
  }
  return result.stdout;
}

function buildah(...args: string[]): Promise<string> {
  return mustExec('buildah', [...BUILDAH, ...args]);
}

interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  WorkingDir?: string;
  Env?: string[];
  Labels?: Record<string, string>;
}

let entrypoint: string[] = [];
let config: ImageConfig = {};
let version = '';
let work = '';

/** A command in the container, every capability dropped; by default as the DaemonSet runs it: uid 0. */
function inContainer(
  command: readonly string[],
  volumes: readonly string[] = [],
  user = ROOT_USER,
): Promise<Result> {
  return exec('buildah', [
    ...BUILDAH,
    'run',
    '--isolation',
    'chroot',
    '--user',
    user,
    '--cap-drop',
    'ALL',
    ...Object.entries(CLI_ENV).flatMap(([name, value]) => ['--env', `${name}=${value}`]),
    ...volumes.flatMap((volume) => ['--volume', volume]),
    CONTAINER,
    '--',
    ...command,
  ]);
}

/** The image's entrypoint with these arguments, as the kubelet would start it. */
function inImage(
  args: readonly string[],
  volumes: readonly string[] = [],
  user = ROOT_USER,
): Promise<Result> {
  return inContainer([...entrypoint, ...args], volumes, user);
}

async function shell(script: string): Promise<string> {
  const result = await inContainer(['sh', '-c', script]);
  expect(result.stderr).toBe('');
  return result.stdout;
}

/** The same CLI from the sources on the host, with the repo's Node 24. */
function onHost(args: readonly string[]): Promise<Result> {
  return exec(join(ROOT, 'node_modules/.bin/node'), ['agent/cli.ts', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...CLI_ENV },
  });
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

type Fields = Record<string, string>;

/** Journal export format, text fields only (none of ours holds a newline). */
function exportText(entries: readonly Fields[]): string {
  return entries
    .map(
      (fields) =>
        `${Object.entries(fields)
          .map(([k, v]) => `${k}=${v}\n`)
          .join('')}\n`,
    )
    .join('');
}

function entry(realtimeUs: number, transport: string, message: string, extra: Fields = {}): Fields {
  return {
    __REALTIME_TIMESTAMP: String(realtimeUs),
    __MONOTONIC_TIMESTAMP: String(realtimeUs - 1_712_340_000_000_000),
    _BOOT_ID: '0a1b2c3d4e5f60718293a4b5c6d7e8f9',
    _TRANSPORT: transport,
    _HOSTNAME: 'node-a',
    SYSLOG_IDENTIFIER: 'kernel',
    PRIORITY: '4',
    SYSLOG_FACILITY: '0',
    MESSAGE: message,
    ...extra,
  };
}

/** A real journal file, written like journald would (compact, keyed hash, zstd), owned as on a node. */
async function makeJournal(dir: string, file: string, exportData: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const result = await exec(JOURNAL_REMOTE, [`--output=${join(dir, file)}`, '-'], { input: exportData });
  if (result.code !== 0) throw new Error(`systemd-journal-remote failed: ${tail(result.stderr)}`);
  await chown(join(dir, file), 0, FOREIGN_GID);
  await chmod(join(dir, file), 0o640);
  await chown(dir, 0, FOREIGN_GID);
  await chmod(dir, 0o750);
}

async function imageIds(): Promise<string[]> {
  const result = await exec('buildah', [...BUILDAH, 'images', '--quiet', '--no-trunc', IMAGE]);
  return result.code === 0 ? result.stdout.split('\n').filter((id) => id !== '') : [];
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error('the image test must run as root (buildah with vfs storage, debootstrap, chroot)');
  }
  if (!existsSync(JOURNAL_REMOTE)) {
    throw new Error(`${JOURNAL_REMOTE} is missing: apt-get install -y systemd-journal-remote`);
  }
  version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

  // Installs buildah and debootstrap when missing, then makes the base image unless it is cached.
  const base = await exec('bash', [join(ROOT, 'test/image/build-base.sh')]);
  if (base.code !== 0)
    throw new Error(`test/image/build-base.sh failed:\n${tail(base.stderr + base.stdout)}`);
  const found = await exec('sh', ['-c', 'command -v buildah']);
  if (found.code !== 0) {
    throw new Error(
      'buildah is not installed: apt-get install -y buildah (test/image/build-base.sh does it as root)',
    );
  }

  await exec('buildah', [...BUILDAH, 'rm', CONTAINER]);
  const before = await imageIds();
  // An HTTPS-intercepting proxy's CA, if this machine's Node needs one, reaches npm ci as a build secret.
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  const secret =
    extraCa !== undefined && existsSync(extraCa) ? ['--secret', `id=extra_ca,src=${extraCa}`] : [];
  const started = Date.now();
  const build = await exec('buildah', [
    ...BUILDAH,
    'bud',
    '--isolation',
    'chroot',
    '--pull=never',
    ...secret,
    '-f',
    'Dockerfile',
    '-t',
    IMAGE,
    '.',
  ]);
  if (build.code !== 0) {
    const log = join(tmpdir(), 'kube-iptables-tailer-image-build.log');
    await writeFile(log, build.stdout + build.stderr);
    // npm and apt print their reason first and pages of usage after it.
    const reasons = (build.stdout + build.stderr)
      .split('\n')
      .filter((line) => /^npm error (code|Missing|`npm ci`)|^E: |^Error: |error TS\d+/.test(line));
    const shown =
      reasons.length > 0 ? reasons.slice(0, 30).join('\n') : tail(build.stdout + build.stderr, 40);
    throw new Error(`buildah bud failed (full log: ${log}):\n${shown}`);
  }
  const after = await imageIds();
  // vfs keeps full copies of every layer: the image this build replaced would pile up run after run.
  for (const id of before.filter((id) => !after.includes(id))) {
    await exec('buildah', [...BUILDAH, 'rmi', id]);
  }
  const size = (await buildah('images', '--format', '{{.Size}}', IMAGE)).trim();
  process.stderr.write(`image ${IMAGE}: built in ${Math.round((Date.now() - started) / 1000)} s, ${size}\n`);

  const inspected = JSON.parse(await buildah('inspect', '--type', 'image', IMAGE)) as {
    OCIv1: { config?: ImageConfig };
  };
  config = inspected.OCIv1.config ?? {};
  entrypoint = config.Entrypoint ?? [];
  await buildah('from', '--pull=never', '--name', CONTAINER, IMAGE);
  work = await mkdtemp(join(tmpdir(), 'image-test-'));
});

afterAll(async () => {
  await exec('buildah', [...BUILDAH, 'rm', CONTAINER]);
  if (work !== '') await rm(work, { recursive: true, force: true });
});

describe('the image', () => {
  it('starts the compiled agent, run by default, and is labelled', () => {
    expect(config.Entrypoint).toEqual(['node', '/app/dist/cli.js']);
    expect(config.Cmd).toEqual(['run']);
    expect(config.User).toBe(IMAGE_USER);
    expect(config.WorkingDir).toBe('/app');
    expect(config.Env).toContain('NODE_ENV=production');
    expect(config.Labels).toMatchObject({
      'org.opencontainers.image.title': 'kube-iptables-tailer',
      'org.opencontainers.image.version': version,
      'org.opencontainers.image.licenses': 'Apache-2.0',
      'org.opencontainers.image.base.name': 'docker.io/library/node:24-trixie-slim',
    });
  });

  it('holds the compiled agent and production dependencies only, and journalctl', async () => {
    // package.json and package-lock.json let SBOM scanners list the npm packages; dpkg's status file, the
    // Debian ones.
    expect((await shell('ls -A /app')).split('\n').filter(Boolean)).toEqual([
      'dist',
      'node_modules',
      'package-lock.json',
      'package.json',
    ]);
    expect(await shell('dpkg-query -W systemd base-files')).toMatch(
      /^base-files\t13\.\S+\nsystemd\t257\.\S+\n$/,
    );
    expect(await shell('find /app/dist -type f -not -name "*.js"')).toBe('');
    expect(await shell('ls /app/dist/cli.js /app/dist/commands/parse.js')).not.toBe('');
    const devOnly = ['typescript', 'vitest', '@biomejs', 'fast-check', 'node'];
    expect(await shell(`cd /app/node_modules && ls -d ${devOnly.join(' ')} 2>/dev/null; true`)).toBe('');
    expect(await shell('command -v npm npx corepack yarn tsc gcc make; true')).toBe('');
    expect(await shell('journalctl --version')).toMatch(/^systemd 257 /);
  });

  it('resolves every command and its imports with the production dependencies alone', async () => {
    // cli.js loads commands on demand, so `run` and its Kubernetes client are otherwise untested here.
    const script = ['parse', 'replay', 'run']
      .map((name) => `await import('/app/dist/commands/${name}.js');`)
      .join(' ');
    const result = await inContainer(['node', '--input-type=module', '-e', `${script} console.log('ok');`]);
    expect(result).toMatchObject({ code: 0, stdout: 'ok\n' });
  });

  it('runs with no capabilities, as the DaemonSet does', async () => {
    expect(await shell('id -u; grep CapEff /proc/self/status')).toBe('0\nCapEff:\t0000000000000000\n');
  });

  it('prints the version of package.json', async () => {
    const result = await inImage(['--version']);
    expect(result).toMatchObject({ code: 0, stdout: `kube-iptables-tailer ${version}\n` });
  });

  it('parses kernel entries of a real journal and ignores forged ones', async () => {
    const t0 = 1_712_349_702_123_456; // 2024-04-05T20:41:42.123456Z
    const mac = 'ee:ee:ee:ee:ee:ee:ea:20:b8:68:45:bd:08:00';
    const dir = join(work, 'journal');
    await makeJournal(
      dir,
      'x.journal',
      exportText([
        entry(t0 - 5_000_000, 'kernel', 'IPv6: ADDRCONF(NETDEV_CHANGE): cali6e7bb88b982: link becomes ready'),
        entry(
          t0,
          'kernel',
          `calico-packet: IN=cali6e7bb88b982 OUT=eth0 MAC=${mac} SRC=10.4.1.6 DST=10.4.0.16 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=36387 DF PROTO=TCP SPT=60353 DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0`,
          // Larger than journald's compression threshold: journalctl has to decompress it (zstd).
          { X_PAYLOAD: 'netperf '.repeat(1024) },
        ),
        entry(
          t0 + 1_000_000,
          'syslog',
          `calico-packet: IN=cali6e7bb88b982 OUT=eth0 MAC=${mac} SRC=10.4.1.6 DST=10.4.0.16 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=3306 WINDOW=42600 RES=0x00 SYN URGP=0`,
        ),
        entry(
          t0 + 2_000_000,
          'kernel',
          'calico-packet: IN=eth0 OUT=cali1f2e3d4c5b6 SRC=fd00:0010:0244:0001:0000:0000:0000:0007 DST=fd00:0010:0244:0000:0000:0000:0000:0005 LEN=80 TC=0 HOPLIMIT=62 FLOWLBL=0 PROTO=UDP SPT=51000 DPT=53 LEN=40',
        ),
        entry(
          t0 + 3_000_000,
          'kernel',
          `calico-packet: IN=cali6e7bb88b982 OUT=eth0 MAC=${mac} SRC=10.4.1.6 DST=10.4.0.16 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=5150 DF PROTO=ICMP TYPE=8 CODE=0 ID=42 SEQ=1`,
        ),
      ]),
    );
    const header = await mustExec('journalctl', ['--header', `--file=${join(dir, 'x.journal')}`]);
    expect(header).toMatch(/Incompatible flags:.*KEYED-HASH.*COMPACT/);

    const result = await inImage(['parse', '--journal', '/var/log/journal'], [`${dir}:/var/log/journal:ro`]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const drops = jsonLines(result.stdout);
    const common = { host: 'node-a', prefix: 'calico-packet' };
    expect(drops).toHaveLength(3);
    expect(drops[0]).toMatchObject({
      ...common,
      time: '2024-04-05T20:41:42.123Z',
      src: '10.4.1.6',
      dst: '10.4.0.16',
      proto: 'TCP',
      srcPort: 60353,
      dstPort: 12865,
      in: 'cali6e7bb88b982',
      out: 'eth0',
      mac,
      ttl: 63,
    });
    expect(drops[1]).toMatchObject({
      ...common,
      time: '2024-04-05T20:41:44.123Z',
      src: 'fd00:10:244:1::7',
      dst: 'fd00:10:244::5',
      proto: 'UDP',
      srcPort: 51000,
      dstPort: 53,
      in: 'eth0',
      out: 'cali1f2e3d4c5b6',
      mac: null,
      ttl: 62,
    });
    expect(drops[2]).toMatchObject({
      ...common,
      time: '2024-04-05T20:41:45.123Z',
      proto: 'ICMP',
      srcPort: null,
      dstPort: null,
      ttl: 64,
    });
  });

  it("reads the samples' journal in the machine-ID layout as the host build does", async () => {
    const dir = join(work, 'samples-journal');
    const exported = await readFile(join(ROOT, 'samples/journal.export'), 'utf8');
    await makeJournal(join(dir, MACHINE_ID), 'system.journal', exported);
    await chown(dir, 0, FOREIGN_GID);
    await chmod(dir, 0o750);

    const inside = await inImage(['parse', '--journal', dir], [`${dir}:${dir}:ro`]);
    const outside = await onHost(['parse', '--journal', dir]);
    expect(inside.code).toBe(0);
    expect(inside.stdout).not.toBe('');
    expect(inside.stdout).not.toContain('"dstPort":3306');
    expect(inside).toEqual(outside);
  });

  it("reads the journal as the image's user when it has the journal's group, and not without it", async () => {
    const dir = join(work, 'group-journal');
    const exported = await readFile(join(ROOT, 'samples/journal.export'), 'utf8');
    await makeJournal(join(dir, MACHINE_ID), 'system.journal', exported);
    await chown(dir, 0, FOREIGN_GID);
    await chmod(dir, 0o750);
    const args = ['parse', '--journal', dir];
    const volumes = [`${dir}:${dir}:ro`];

    const asRoot = await inImage(args, volumes);
    const withGroup = await inImage(args, volumes, JOURNAL_GROUP_USER);
    expect(withGroup.code).toBe(0);
    expect(withGroup.stdout).not.toBe('');
    expect(withGroup).toEqual(asRoot);

    const withoutGroup = await inImage(args, volumes, IMAGE_USER);
    expect(withoutGroup.stdout).toBe('');
    expect(withoutGroup.code).not.toBe(0);
    expect(withoutGroup.stderr).toMatch(/permission|EACCES|not readable|unreadable/i);
  });

  it('doctor reports on a journal mounted read-only, and exits 1 with no API server configured', async () => {
    const nowUs = Date.now() * 1000;
    const drop = (prefix: string, sport: number) =>
      `${prefix}IN=cali6e7bb88b982 OUT=eth0 SRC=10.4.1.6 DST=10.4.0.16 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0`;
    const dir = join(work, 'doctor-journal');
    await makeJournal(
      join(dir, MACHINE_ID),
      'system.journal',
      exportText([
        entry(nowUs - 3 * 3_600_000_000, 'kernel', drop('calico-packet: ', 40000)),
        entry(
          nowUs - 5_000_000,
          'kernel',
          'IPv6: ADDRCONF(NETDEV_CHANGE): cali6e7bb88b982: link becomes ready',
        ),
        entry(nowUs - 4_000_000, 'kernel', drop('calico-packet: ', 40001)),
        entry(nowUs - 3_000_000, 'kernel', drop('calico-packet: ', 40002)),
        entry(nowUs - 2_000_000, 'kernel', drop('calico-drop: ', 40003)),
        entry(nowUs - 1_000_000, 'syslog', drop('calico-packet: ', 40004)),
      ]),
    );
    await chown(dir, 0, FOREIGN_GID);
    await chmod(dir, 0o750);

    // `env` sets the DaemonSet's variables; no KUBECONFIG and no KUBERNETES_SERVICE_HOST: not in a pod.
    const result = await inContainer(
      ['env', 'JOURNAL_DIRECTORY=/var/log/journal', 'NODE_NAME=node-a', ...entrypoint, 'doctor', '--json'],
      [`${dir}:/var/log/journal:ro`],
    );
    // buildah run reports a non-zero exit on its own stderr; doctor itself writes nothing there.
    const buildahExit = /^(subprocess exited with status 1|Error: exit status 1|)$/;
    expect(result.stderr.split('\n').filter((line) => !buildahExit.test(line))).toEqual([]);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as {
      source: Record<string, unknown>;
      api: Record<string, unknown>;
      checks: { id: string; status: string }[];
    };
    expect(report.source).toMatchObject({
      kind: 'journal',
      path: '/var/log/journal',
      prefix: 'calico-packet',
      readable: true,
      error: null,
      journalFiles: 1,
      entries: 4,
      prefixed: 2,
      drops: 2,
      otherPrefixes: [{ prefix: 'calico-drop', count: 1 }],
      invalid: [],
      addresses: [
        { ip: '10.4.0.16', count: 2 },
        { ip: '10.4.1.6', count: 2 },
      ],
    });
    expect(report.api).toMatchObject({ reachable: false, failure: 'not_configured' });
    expect(report.checks.filter(({ status }) => status === 'fail').map(({ id }) => id)).toEqual(['api']);
  });

  it('parses a file large enough for the worker pool as the sources do', async () => {
    // parse hands files of 64 MiB and more to worker threads, which load their own module by URL.
    const kernLog = await readFile(join(ROOT, 'samples/kern.log'));
    const copies = Math.ceil((65 << 20) / kernLog.length);
    const file = join(work, 'large.log');
    await writeFile(file, Buffer.concat(Array.from({ length: copies }, () => kernLog)));
    const stats = (result: Result): unknown => {
      const { seconds: _, ...counts } = JSON.parse(result.stdout) as Record<string, unknown>;
      return { code: result.code, counts };
    };
    const inside = await inImage(['parse', '--stats', '/logs/large.log'], [`${work}:/logs:ro`]);
    const outside = await onHost(['parse', '--stats', file]);
    expect(inside.stderr.split('\n').filter((line) => !line.includes('missing_field'))).toEqual(['']);
    expect(stats(inside)).toEqual(stats(outside));
    expect(stats(inside)).toMatchObject({ code: 0, counts: { drops: copies * 17 } });
  });

  it('replays the samples exactly as the sources do', async () => {
    const samples = join(ROOT, 'samples');
    const args = ['replay', '--pods', '/samples/pods.json', '/samples/kern.log'];
    const inside = await inImage(args, [`${samples}:/samples:ro`]);
    const outside = await onHost(['replay', '--pods', 'samples/pods.json', 'samples/kern.log']);
    expect(inside.code).toBe(outside.code);
    expect(jsonLines(inside.stdout)).toHaveLength(11);
    expect(inside.stdout).toBe(outside.stdout);
  });
});
