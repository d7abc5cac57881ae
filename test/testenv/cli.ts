// A real etcd + kube-apiserver for the end-to-end tests, on 127.0.0.1 only.
//   node test/testenv/cli.ts build              build (or find cached) binaries, print their paths
//   node test/testenv/cli.ts up                 start, print {"kubeconfig","server"} as one JSON line
//   node test/testenv/cli.ts down               stop and remove the state directory (idempotent)
//   node test/testenv/cli.ts stop-apiserver | start-apiserver | restart-apiserver
// State lives in $TESTENV_DIR (default <repo>/.cache/testenv); binaries in
// ${XDG_CACHE_HOME:-~/.cache}/kube-iptables-tailer/controlplane-<hash of test/controlplane>.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const moduleDir = join(repoRoot, 'test/controlplane');
const stateDir = resolve(repoRoot, process.env.TESTENV_DIR ?? '.cache/testenv');
const stateFile = join(stateDir, 'state.json');
const pki = join(stateDir, 'pki');
const kubeconfigPath = join(stateDir, 'kubeconfig');
const serviceAccountIssuer = 'https://kubernetes.default.svc.cluster.local';

interface Binaries {
  etcd: string;
  kubeApiserver: string;
}

interface State {
  bin: Binaries;
  etcdPort: number;
  etcdPeerPort: number;
  apiserverPort: number;
  etcdPid: number;
  apiserverPid: number | null;
}

class UsageError extends Error {}

function fail(message: string): never {
  throw new UsageError(message);
}

function log(message: string): void {
  process.stderr.write(`testenv: ${message}\n`);
}

function tail(path: string, lines = 25): string {
  if (!existsSync(path)) return '';
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

// Without these, `kubectl version` would report the server as v0.0.0-master.
function versionLdflags(): string {
  const goMod = readFileSync(join(moduleDir, 'go.mod'), 'utf8');
  const match = /^\s*k8s\.io\/kubernetes v(\d+)\.(\d+)\.(\d+)\b/m.exec(goMod);
  if (!match) fail(`no k8s.io/kubernetes requirement in ${moduleDir}/go.mod`);
  const [, major, minor, patch] = match;
  const vars = {
    gitVersion: `v${major}.${minor}.${patch}`,
    gitMajor: major,
    gitMinor: minor,
    gitTreeState: 'clean',
    buildDate: '1970-01-01T00:00:00Z',
  };
  return ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']
    .flatMap((pkg) => Object.entries(vars).map(([name, value]) => `-X ${pkg}.${name}=${value}`))
    .join(' ');
}

function build(): Binaries {
  const goArgs = [
    'build',
    '-mod=readonly',
    '-buildvcs=false',
    '-trimpath',
    `-ldflags=-s -w ${versionLdflags()}`,
  ];
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'etcd/main.go']) {
    hash.update(readFileSync(join(moduleDir, file)));
  }
  hash.update(JSON.stringify([goArgs, process.platform, process.arch]));
  const cacheRoot = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kube-iptables-tailer');
  const dir = join(cacheRoot, `controlplane-${hash.digest('hex').slice(0, 16)}`);
  const bin = { etcd: join(dir, 'etcd'), kubeApiserver: join(dir, 'kube-apiserver') };
  if (existsSync(bin.etcd) && existsSync(bin.kubeApiserver)) return bin;

  mkdirSync(cacheRoot, { recursive: true });
  // Built aside and renamed, so an interrupted or concurrent build never leaves a half-filled cache entry.
  const tmp = `${dir}.tmp-${process.pid}`;
  const buildLog = `${dir}.build.log`;
  log(`building kube-apiserver and etcd into ${dir} (the first build takes many minutes; log: ${buildLog})`);
  const fd = openSync(buildLog, 'w');
  const started = Date.now();
  const result = spawnSync(
    'go',
    [...goArgs, '-o', `${tmp}/`, 'k8s.io/kubernetes/cmd/kube-apiserver', './etcd'],
    { cwd: moduleDir, stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  if (result.error || result.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    fail(
      `build failed (${result.error?.message ?? `go exited ${result.status}`}); log: ${buildLog}\n${tail(buildLog)}`,
    );
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // Another build finished first with identical inputs; keep its result.
    rmSync(tmp, { recursive: true, force: true });
  }
  log(`built in ${Math.round((Date.now() - started) / 1000)} s`);
  return bin;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? res(address.port) : rej(new Error('no port')),
      );
    });
  });
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: pki, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makePki(): void {
  mkdirSync(pki, { recursive: true });
  const key = (name: string) =>
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  const cert = (name: string, subject: string, extensions: string[]) => {
    key(name);
    const signer = name === 'ca' ? [] : ['-CA', 'ca.crt', '-CAkey', 'ca.key'];
    const ext = extensions.flatMap((e) => ['-addext', e]);
    openssl([
      'req',
      '-new',
      '-x509',
      ...signer,
      '-key',
      `${name}.key`,
      '-subj',
      subject,
      '-days',
      '3650',
      ...ext,
      '-out',
      `${name}.crt`,
    ]);
  };
  cert('ca', '/CN=kube-iptables-tailer-testenv-ca', [
    'basicConstraints=critical,CA:TRUE',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaf = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature'];
  cert('apiserver', '/CN=kube-apiserver', [
    ...leaf,
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
  ]);
  cert('admin', '/O=system:masters/CN=kubernetes-admin', [...leaf, 'extendedKeyUsage=clientAuth']);
  key('sa');
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

function writeKubeconfig(server: string): void {
  const b64 = (file: string) => readFileSync(join(pki, file)).toString('base64');
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'testenv', cluster: { server, 'certificate-authority-data': b64('ca.crt') } }],
    users: [
      {
        name: 'admin',
        user: { 'client-certificate-data': b64('admin.crt'), 'client-key-data': b64('admin.key') },
      },
    ],
    contexts: [{ name: 'testenv', context: { cluster: 'testenv', user: 'admin' } }],
    'current-context': 'testenv',
  };
  writeFileSync(kubeconfigPath, `${JSON.stringify(kubeconfig, null, 2)}\n`, { mode: 0o600 });
}

function spawnDetached(binary: string, args: string[], logName: string): number {
  const fd = openSync(join(stateDir, logName), 'a');
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) fail(`could not start ${binary}`);
  return child.pid;
}

function startEtcd(s: Omit<State, 'etcdPid' | 'apiserverPid'>): number {
  const client = `http://127.0.0.1:${s.etcdPort}`;
  const peer = `http://127.0.0.1:${s.etcdPeerPort}`;
  return spawnDetached(
    s.bin.etcd,
    [
      '--name=testenv',
      `--data-dir=${join(stateDir, 'etcd-data')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=testenv=${peer}`,
      // Test data is thrown away after each run, so durability buys nothing.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    'etcd.log',
  );
}

function startApiserver(s: State): number {
  const file = (name: string) => join(pki, name);
  return spawnDetached(
    s.bin.kubeApiserver,
    [
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${s.apiserverPort}`,
      `--etcd-servers=http://127.0.0.1:${s.etcdPort}`,
      `--cert-dir=${pki}`,
      `--tls-cert-file=${file('apiserver.crt')}`,
      `--tls-private-key-file=${file('apiserver.key')}`,
      `--client-ca-file=${file('ca.crt')}`,
      '--authorization-mode=Node,RBAC',
      `--service-account-issuer=${serviceAccountIssuer}`,
      `--service-account-key-file=${file('sa.pub')}`,
      `--service-account-signing-key-file=${file('sa.key')}`,
      `--api-audiences=${serviceAccountIssuer}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      // The "kubernetes" Service's Endpoints may not hold a loopback address, which is all we have.
      '--endpoint-reconciler-type=none',
      // It rejects pods whose ServiceAccount is missing, and the "default" one is made
      // by kube-controller-manager, which is not run here.
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--profiling=false',
    ],
    'kube-apiserver.log',
  );
}

// Guards against signalling an unrelated process that reused a recorded PID.
function isOurs(pid: number | null): pid is number {
  if (pid === null) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(stateDir);
  } catch {
    return false;
  }
}

async function stop(pid: number | null): Promise<void> {
  if (!isOurs(pid)) return;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  };
  signal('SIGTERM');
  for (let i = 0; i < 100 && isOurs(pid); i++) await sleep(100);
  if (isOurs(pid)) {
    signal('SIGKILL');
    for (let i = 0; i < 50 && isOurs(pid); i++) await sleep(100);
  }
}

function readState(): State | null {
  if (!existsSync(stateFile)) return null;
  return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
}

function saveState(s: State): void {
  writeFileSync(stateFile, `${JSON.stringify(s, null, 2)}\n`);
}

function readyz(port: number): Promise<boolean> {
  return new Promise((res) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/readyz',
        ca: readFileSync(join(pki, 'ca.crt')),
        cert: readFileSync(join(pki, 'admin.crt')),
        key: readFileSync(join(pki, 'admin.key')),
        timeout: 2000,
      },
      (response) => {
        response.resume();
        res(response.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(false));
    req.end();
  });
}

async function etcdHealthy(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return response.ok && ((await response.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

async function waitFor(
  what: string,
  pid: number,
  logName: string,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (!(await check())) {
    const logPath = join(stateDir, logName);
    if (!isOurs(pid)) fail(`${what} exited during startup; log: ${logPath}\n${tail(logPath)}`);
    if (Date.now() > deadline) fail(`${what} not ready after 90 s; log: ${logPath}\n${tail(logPath)}`);
    await sleep(200);
  }
}

async function startAndWaitApiserver(s: State): Promise<void> {
  s.apiserverPid = startApiserver(s);
  saveState(s);
  await waitFor('kube-apiserver', s.apiserverPid, 'kube-apiserver.log', () => readyz(s.apiserverPort));
}

function printEndpoint(s: State): void {
  const server = `https://127.0.0.1:${s.apiserverPort}`;
  process.stdout.write(`${JSON.stringify({ kubeconfig: kubeconfigPath, server })}\n`);
}

async function down(): Promise<void> {
  const s = readState();
  if (s) {
    await stop(s.apiserverPid);
    await stop(s.etcdPid);
  }
  rmSync(stateDir, { recursive: true, force: true });
}

async function up(): Promise<void> {
  const existing = readState();
  if (existing && isOurs(existing.etcdPid) && isOurs(existing.apiserverPid)) {
    if (await readyz(existing.apiserverPort)) return printEndpoint(existing);
  }
  if (existing) log('found a stale or unhealthy environment; replacing it');
  await down();

  const bin = build();
  mkdirSync(stateDir, { recursive: true });
  makePki();
  const ports = {
    bin,
    etcdPort: await freePort(),
    etcdPeerPort: await freePort(),
    apiserverPort: await freePort(),
  };
  const s: State = { ...ports, etcdPid: startEtcd(ports), apiserverPid: null };
  saveState(s);
  try {
    await waitFor('etcd', s.etcdPid, 'etcd.log', () => etcdHealthy(s.etcdPort));
    writeKubeconfig(`https://127.0.0.1:${s.apiserverPort}`);
    await startAndWaitApiserver(s);
  } catch (err) {
    // Leave nothing running, but keep the logs for the error message to point at.
    await stop(s.apiserverPid);
    await stop(s.etcdPid);
    throw err;
  }
  printEndpoint(s);
}

function requireState(): State {
  const s = readState();
  if (!s || !isOurs(s.etcdPid)) fail(`no running environment in ${stateDir}; run "up" first`);
  return s;
}

async function stopApiserver(): Promise<void> {
  const s = requireState();
  await stop(s.apiserverPid);
  s.apiserverPid = null;
  saveState(s);
}

async function startApiserverCommand(): Promise<void> {
  const s = requireState();
  if (isOurs(s.apiserverPid)) fail(`kube-apiserver already running (pid ${s.apiserverPid})`);
  await startAndWaitApiserver(s);
  printEndpoint(s);
}

const commands: Record<string, () => Promise<void>> = {
  build: async () => {
    process.stdout.write(`${JSON.stringify(build())}\n`);
  },
  up,
  down,
  'stop-apiserver': stopApiserver,
  'start-apiserver': startApiserverCommand,
  'restart-apiserver': async () => {
    await stopApiserver();
    await startApiserverCommand();
  },
};

const command = commands[process.argv[2] ?? ''];
try {
  if (!command) fail(`usage: cli.ts ${Object.keys(commands).join('|')}`);
  await command();
} catch (err) {
  log(
    err instanceof UsageError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err),
  );
  process.exitCode = 1;
}
