// `run` as the DaemonSet starts it: what it does when it cannot start (one JSON line naming what to fix,
// exit 2, no stack trace), and what /readyz says while the pod index has synced but the log cannot be read.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, waitFor } from './agent-process.ts';
import { journalDir } from './scenario.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface Launched {
  child: ChildProcess;
  /** stderr as written, line by line. */
  lines: () => string[];
  stdout: () => string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/**
 * The CLI with exactly `env`, plus PATH and the NODE_NAME the DaemonSet always sets, unless given: nothing
 * inherited that could configure it.
 */
function launch(env: Record<string, string>, args = ['run']): Launched {
  const child = spawn(process.execPath, [join(ROOT, 'agent/cli.ts'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', NODE_NAME: 'node-a', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  let stdout = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    child,
    lines: () => stderr.split('\n').filter((line) => line !== ''),
    stdout: () => stdout,
    exited,
  };
}

/** Exit 2 and stderr exactly one JSON line at level fatal, whose message contains each of `expected`. */
async function expectStartupFailure(launched: Launched, ...expected: string[]): Promise<void> {
  expect(await launched.exited).toBe(2);
  const lines = launched.lines();
  expect(lines).toHaveLength(1);
  const line = JSON.parse(lines[0]!) as { level: number; msg: string; problems: string[] };
  expect(line.level).toBe(60);
  for (const text of expected) expect(line.msg).toContain(text);
  expect(lines[0]).not.toMatch(/\bat .*\.(ts|js):\d+/);
}

describe('run cannot start', () => {
  let kubeconfig: string;
  let dir: string;
  beforeAll(async () => {
    kubeconfig = inject('kubeconfig');
    dir = await mkdtemp(join(tmpdir(), 'startup-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const journal = () => ({ JOURNAL_DIRECTORY: dir, CHECKPOINT_DIRECTORY: join(dir, 'state') });

  it('outside a cluster without KUBECONFIG', async () => {
    await expectStartupFailure(
      launch(journal()),
      'KUBECONFIG is not set and this is not a pod (KUBERNETES_SERVICE_HOST is unset)',
    );
  });

  it('in a pod without its ServiceAccount token', async () => {
    await expectStartupFailure(
      launch({ ...journal(), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }),
      'in-cluster ServiceAccount token /var/run/secrets/kubernetes.io/serviceaccount/token: no such file',
    );
  });

  it('with KUBECONFIG naming a missing file, or one that is not a kubeconfig', async () => {
    const missing = join(dir, 'missing.yaml');
    await expectStartupFailure(
      launch({ ...journal(), KUBECONFIG: missing }),
      `KUBECONFIG=${missing}: no such file; expected a kubeconfig file`,
    );
    const text = join(dir, 'notes.txt');
    await writeFile(text, 'just some text\n');
    await expectStartupFailure(
      launch({ ...journal(), KUBECONFIG: text }),
      `KUBECONFIG=${text}: not a kubeconfig`,
    );
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'clusters: [\n  - name: {\n');
    await expectStartupFailure(
      launch({ ...journal(), KUBECONFIG: broken }),
      `KUBECONFIG=${broken}: not a kubeconfig`,
    );
  });

  it('with KUBE_API_SERVER=http://… the client would refuse', async () => {
    await expectStartupFailure(
      launch({ ...journal(), KUBECONFIG: kubeconfig, KUBE_API_SERVER: 'http://127.0.0.1:8080' }),
      'KUBE_API_SERVER=http://127.0.0.1:8080',
      'insecure-skip-tls-verify',
    );
  });

  it('with the metrics port in use', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      await expectStartupFailure(
        launch({ ...journal(), KUBECONFIG: kubeconfig, METRICS_SERVER_PORT: String(port) }),
        `METRICS_SERVER_PORT=${port}: the port is in use by another process`,
      );
    } finally {
      taken.close();
    }
  });

  it('reports every configuration problem in its one line, credentials included', async () => {
    await expectStartupFailure(
      launch({
        KUBECONFIG: join(dir, 'missing.yaml'),
        METRICS_SERVER_PORT: '0x10',
        PACKET_DROP_EXPIRATION_MINUTES: '1e3',
        KUBE_EVENT_DISPLAY_REASON: ' ',
      }),
      'METRICS_SERVER_PORT="0x10"',
      'PACKET_DROP_EXPIRATION_MINUTES="1e3"',
      'KUBE_EVENT_DISPLAY_REASON=" "',
      'none of JOURNAL_DIRECTORY, IPTABLES_LOG_PATH and KMSG_PATH is set',
      `KUBECONFIG=${join(dir, 'missing.yaml')}: no such file`,
    );
  });

  it("without NODE_NAME while watching only its node's pods (the default)", async () => {
    await expectStartupFailure(
      launch({ ...journal(), KUBECONFIG: kubeconfig, NODE_NAME: '' }),
      'NODE_NAME is not set: POD_WATCH_SCOPE=node (the default)',
      'or POD_WATCH_SCOPE=cluster',
    );
  });

  it('given arguments', async () => {
    await expectStartupFailure(
      launch({ ...journal(), KUBECONFIG: kubeconfig }, ['run', 'extra']),
      'run takes no arguments',
    );
  });
});

describe('doctor', () => {
  it('blames KUBE_API_SERVER=http://… on the configuration, not on the network', async () => {
    const { dir } = await journalDir();
    const run = launch(
      { JOURNAL_DIRECTORY: dir, KUBECONFIG: inject('kubeconfig'), KUBE_API_SERVER: 'http://127.0.0.1:8080' },
      ['doctor', '--json'],
    );
    expect(await run.exited).toBe(1);
    const report = JSON.parse(run.stdout()) as { api: { failure: string; error: string } };
    expect(report.api.failure).toBe('not_configured');
    expect(report.api.error).toContain('KUBE_API_SERVER=http://127.0.0.1:8080');
    expect(report.api.error).toContain('insecure-skip-tls-verify: true');
  });
});

describe('parse and replay', () => {
  it('do not fail on variables only run uses', async () => {
    const { dir } = await journalDir();
    const parse = launch({ POD_IDENTIFIER: 'bogus', METRICS_SERVER_PORT: 'x', KUBE_API_SERVER: 'nowhere' }, [
      'parse',
      '--journal',
      dir,
    ]);
    expect(await parse.exited).toBe(0);
    expect(parse.lines()).toEqual([]);
  });
});

/** /readyz's status and body. */
async function readyz(port: number): Promise<{ status: number; body: string } | null> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
  return res === null ? null : { status: res.status, body: await res.text() };
}

/** Waits until the pod index has synced and the source has looked at its input: what /readyz still reports is the source's problem. */
async function notReadyOnlyFor(port: number): Promise<string> {
  const answer = await waitFor(
    async () => {
      const r = await readyz(port);
      return r !== null && !r.body.includes('pod index') && !r.body.includes('not reading yet') && r;
    },
    30_000,
    'the pod index synced',
  );
  expect(answer.status).toBe(503);
  return answer.body;
}

describe('readiness', () => {
  let kubeconfig: string;
  let dir: string;
  beforeAll(async () => {
    kubeconfig = inject('kubeconfig');
    dir = await mkdtemp(join(tmpdir(), 'readiness-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function agent(env: Record<string, string>): Promise<{ port: number; launched: Launched }> {
    const port = await freePort();
    const state = await mkdtemp(join(dir, 'state-'));
    const launched = launch({
      KUBECONFIG: kubeconfig,
      CHECKPOINT_DIRECTORY: state,
      METRICS_SERVER_PORT: String(port),
      REVERSE_DNS: 'false',
      ...env,
    });
    return { port, launched };
  }

  it('fails while IPTABLES_LOG_PATH is missing, then a directory, and passes once it is a file', async () => {
    const path = join(dir, 'kern.log');
    const { port } = await agent({ IPTABLES_LOG_PATH: path });
    expect(await notReadyOnlyFor(port)).toBe(
      `not ready: source: ${path} does not exist; waiting for it to appear\n`,
    );
    await mkdir(path);
    await waitFor(
      async () => (await readyz(port))?.body.includes('is a directory'),
      10_000,
      'a directory reported',
    );
    await rm(path, { recursive: true });
    await writeFile(path, 'Dec  5 10:00:00 node-a kernel: boot\n');
    await waitFor(async () => (await readyz(port))?.status === 200, 10_000, 'ready');
    expect((await readyz(port))?.body).toBe('ok\n');
  });

  it('fails while JOURNAL_DIRECTORY is missing', async () => {
    const journal = join(dir, 'no-journal');
    const { port } = await agent({ JOURNAL_DIRECTORY: journal });
    expect(await notReadyOnlyFor(port)).toBe(
      `not ready: source: journal directory ${journal} does not exist; waiting for it to appear\n`,
    );
  });

  it('fails while journalctl is not on PATH', async () => {
    const { dir: journal } = await journalDir();
    const emptyPath = await mkdtemp(join(dir, 'bin-'));
    const { port } = await agent({ JOURNAL_DIRECTORY: journal, PATH: emptyPath });
    expect(await notReadyOnlyFor(port)).toMatch(
      /^not ready: source: journalctl not found: the image needs journalctl \(package systemd\) in PATH; retrying (in [\d.]+ s|now)\n$/,
    );
  });

  it('logs the port the system chose, and answers on it', async () => {
    const { dir: journal } = await journalDir();
    const launched = launch({
      KUBECONFIG: kubeconfig,
      JOURNAL_DIRECTORY: journal,
      CHECKPOINT_DIRECTORY: await mkdtemp(join(dir, 'state-')),
      METRICS_SERVER_PORT: '0',
    });
    const starting = await waitFor(
      () =>
        launched
          .lines()
          .map((line) => JSON.parse(line) as { msg: string; port?: number })
          .find((line) => line.msg === 'starting'),
      30_000,
      'the start log line',
    );
    expect(starting.port).toBeGreaterThan(0);
    await waitFor(
      async () => (await readyz(starting.port!))?.status === 200,
      30_000,
      'ready on the logged port',
    );
  });

  it('warns once, without a stack trace, when CHECKPOINT_DIRECTORY is a file', async () => {
    const { dir: journal } = await journalDir();
    const file = join(dir, 'checkpoint-file');
    await writeFile(file, 'not a directory\n');
    const { port, launched } = await agent({ JOURNAL_DIRECTORY: journal, CHECKPOINT_DIRECTORY: file });
    await waitFor(async () => (await readyz(port))?.status === 200, 30_000, 'ready');
    launched.child.kill('SIGTERM');
    expect(await launched.exited).toBe(0);
    const warnings = launched
      .lines()
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((line) => line.level >= 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ directory: file, reason: 'ENOTDIR' });
    expect(warnings[0]!.msg).toContain('running without checkpoints (set CHECKPOINT_DIRECTORY)');
    expect(JSON.stringify(warnings[0])).not.toContain('stack');
  });
});
