// `doctor` as its own process, the way a user runs it: real journals written by systemd-journal-remote,
// a real log file, the real API server with the shipped RBAC (or a ClusterRole derived from it) bound to a
// ServiceAccount whose token is the only credential doctor gets.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Check, CheckId, DoctorReport } from '../../../agent/tools/doctor/types.ts';
import { freePort, metricValue, waitFor } from '../../e2e/agent-process.ts';
import { agentLauncher, journalAgentEnv, journalDir } from '../../e2e/scenario.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createNode,
  createPod,
  createToken,
  deleteNode,
  deletePod,
  kubectl,
  setPodRunning,
  shippedAgentToken,
  tokenKubeconfig,
  uniqueName,
} from '../../support/cluster.ts';
import { appendJournal, type JournalEntry, MACHINE_ID, tempDir } from '../../support/journal.ts';
import { KernelNet } from '../../support/kernel-net.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const NODE = join(ROOT, 'node_modules/.bin/node');
const NOBODY = 65534;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * doctor with only these variables (nothing of the test runner's environment leaks in), POD_WATCH_SCOPE=cluster
 * unless they say otherwise: node mode needs NODE_NAME, and is tested on nodes of its own below.
 */
function doctor(env: Record<string, string>, args: string[] = [], uid?: number): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ['agent/cli.ts', 'doctor', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TZ: 'UTC', POD_WATCH_SCOPE: 'cluster', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(uid === undefined ? {} : { uid, gid: uid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}

async function doctorJson(
  env: Record<string, string>,
  uid?: number,
): Promise<DoctorReport & { code: number | null }> {
  const run = await doctor(env, ['--json'], uid);
  expect(run.stderr).toBe('');
  return { ...(JSON.parse(run.stdout) as DoctorReport), code: run.code };
}

function checkOf(report: DoctorReport, id: CheckId): Check {
  const found = report.checks.find((check) => check.id === id);
  if (found === undefined) throw new Error(`no ${id} check in ${JSON.stringify(report.checks)}`);
  return found;
}

/** The report's line for a check, with the lines under it (details, advice). */
function section(text: string, id: CheckId): string {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => new RegExp(`^\\[[a-zA-Z]+\\] +${id} `).test(line));
  if (start < 0) throw new Error(`no ${id} line in:\n${text}`);
  const end = lines.findIndex((line, i) => i > start && !line.startsWith(' '));
  return lines.slice(start, end).join('\n');
}

/** A TCP drop as the kernel's LOG target prints it; `prefix` includes its separator (`calico-packet: `). */
function dropMessage(prefix: string, src: string, dst: string, sport = 40000): string {
  return `${prefix}IN=cali1 OUT=eth0 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=12865 WINDOW=42600 RES=0x00 SYN URGP=0`;
}

const dirs: string[] = [];
const agentWith = agentLauncher();

async function journal(entries: readonly JournalEntry[]): Promise<string> {
  const dir = await tempDir('doctor-journal');
  dirs.push(dir);
  await appendJournal(join(dir, MACHINE_ID, 'system.journal'), entries);
  return dir;
}

/** Addresses of this file alone: other test files share the API server and have pods of their own. */
const NET = `10.211.${Math.floor(Math.random() * 256)}`;
const CLIENT_IP = `${NET}.6`;
const NODE_IP = `${NET}.1`;
const UNKNOWN_IP = `${NET}.250`;

let c: Cluster;
/** The shipped RBAC's ServiceAccount token, in a kubeconfig of its own. */
let agentKubeconfig: string;
let namespace: string;
let nodeName: string;

beforeAll(async () => {
  c = connect(inject('kubeconfig'));
  agentKubeconfig = await tokenKubeconfig(c, await shippedAgentToken(c));
  namespace = await createNamespace(c);
  await createPod(c, { namespace, name: 'client', nodeName: 'node-a' });
  await setPodRunning(c, namespace, 'client', { podIPs: [CLIENT_IP], hostIP: '10.128.0.2' });
  nodeName = uniqueName('doctor-node');
  await createNode(c, nodeName, [{ type: 'InternalIP', address: NODE_IP }]);
});

afterAll(async () => {
  await deleteNode(c, nodeName).catch(() => {});
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('doctor on a healthy setup', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await journal([
      { message: 'eth0: link becomes ready' },
      ...[1, 2, 3].map((i) => ({
        message: dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP, 40000 + i),
      })),
      { message: dropMessage('calico-packet: ', CLIENT_IP, NODE_IP) },
    ]);
  });

  it('exits 0 and reports the counts of every check', async () => {
    const run = await doctor({ JOURNAL_DIRECTORY: dir, KUBECONFIG: agentKubeconfig });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe(
      `kube-iptables-tailer doctor: JOURNAL_DIRECTORY=${dir}, IPTABLES_LOG_PREFIX=calico-packet, the last 10 minutes`,
    );
    expect(lines).toContain(`[ok]   source       journal ${dir}: 1 journal file`);
    expect(lines).toContain('[ok]   window       5 kernel entries in the last 10 minutes');
    expect(lines).toContain(
      '[ok]   prefix       4 lines with the prefix calico-packet in the last 10 minutes',
    );
    expect(lines).toContain('[ok]   parse        4 packet drops parsed');
    expect(section(run.stdout, 'api')).toMatch(
      /^\[ok\] {3}api {10}reachable at https:\/\/127\.0\.0\.1:\d+ \(Kubernetes v1\.33\.\d+\) with the kubeconfig credentials$/,
    );
    expect(lines).toContain(
      '[ok]   permissions  allowed: pods list, pods watch, nodes list, nodes watch, events create, events patch',
    );
    expect(section(run.stdout, 'pods')).toMatch(
      /^\[ok\] {3}pods {9}POD_WATCH_SCOPE=cluster: \d+ Running pods? would be indexed, \d+ nodes?$/,
    );
    expect(lines).toContain('[ok]   lookups      not used: POD_WATCH_SCOPE=cluster watches every pod');
    expect(lines.at(-2)).toBe('nothing keeps events from being posted; 1 warning');
  });

  it('resolves the frequent drop addresses: a Running pod, a node, and an unknown one', async () => {
    const report = await doctorJson({ JOURNAL_DIRECTORY: dir, KUBECONFIG: agentKubeconfig });
    expect(report.code).toBe(0);
    const watched = { hostNetwork: false, via: 'watch', lookupError: null };
    expect(report.pods?.addresses).toEqual([
      { ip: CLIENT_IP, count: 4, pod: `${namespace}/client`, node: null, ...watched },
      { ip: UNKNOWN_IP, count: 3, pod: null, node: null, ...watched },
      { ip: NODE_IP, count: 1, pod: null, node: nodeName, ...watched },
    ]);
    expect(checkOf(report, 'addresses')).toMatchObject({
      status: 'warn',
      summary: '1 of the 3 most frequent drop addresses match no Running pod or node',
      details: [
        expect.stringMatching(
          new RegExp(`^${CLIENT_IP.replaceAll('.', '\\.')} +4 drops  pod ${namespace}/client$`),
        ),
        expect.stringMatching(/ 3 drops {2}unresolved$/),
        expect.stringMatching(new RegExp(` 1 drop {2}node ${nodeName}$`)),
      ],
    });
  });

  it('prints the report as JSON with --json', async () => {
    const report = await doctorJson({ JOURNAL_DIRECTORY: dir, KUBECONFIG: agentKubeconfig });
    expect(Object.keys(report).sort()).toEqual([
      'api',
      'checks',
      'code',
      'exitCode',
      'felix',
      'lookups',
      'pods',
      'source',
      'watch',
    ]);
    expect(report.exitCode).toBe(0);
    expect(report.source).toEqual({
      kind: 'journal',
      path: dir,
      prefix: 'calico-packet',
      windowMinutes: 10,
      since: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      readable: true,
      error: null,
      journalFiles: 1,
      bytesRead: null,
      truncated: false,
      kmsg: null,
      entries: 5,
      prefixed: 4,
      drops: 4,
      otherPrefixes: [],
      invalid: [],
      addresses: [
        { ip: CLIENT_IP, count: 4 },
        { ip: UNKNOWN_IP, count: 3 },
        { ip: NODE_IP, count: 1 },
      ],
    });
    expect(report.api).toEqual({
      server: expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+$/),
      credentials: 'kubeconfig',
      reachable: true,
      failure: null,
      error: null,
      version: expect.stringMatching(/^v1\.33\./),
      permissions: [
        ['pods', 'list'],
        ['pods', 'watch'],
        ['nodes', 'list'],
        ['nodes', 'watch'],
        ['events', 'create'],
        ['events', 'patch'],
      ].map(([resource, verb]) => ({ resource, verb, allowed: true, error: null })),
    });
    expect(report.pods).toMatchObject({ error: null, errorStatus: null, nodesError: null });
    expect(report.pods?.running).toBeGreaterThanOrEqual(1);
    expect(report.pods?.nodes).toBeGreaterThanOrEqual(1);
    expect(report.checks.map(({ id, status }) => [id, status])).toEqual([
      ['source', 'ok'],
      ['window', 'ok'],
      ['prefix', 'ok'],
      ['parse', 'ok'],
      ['api', 'ok'],
      ['permissions', 'ok'],
      ['pods', 'ok'],
      ['addresses', 'warn'],
      ['lookups', 'ok'],
      ['felix', 'skip'],
    ]);
    expect(report.watch).toEqual({ scope: 'cluster', nodeName: null });
    expect(report.lookups).toEqual({
      url: null,
      error: null,
      outcomes: null,
      hitRate: null,
      cacheEntries: null,
    });
    expect(report.pods?.local).toBeNull();
    // The shipped role grants nothing of Calico's: reading Felix's prefix is optional.
    expect(report.felix).toMatchObject({ api: null, logPrefix: null, reason: 'forbidden' });
    for (const check of report.checks) {
      expect(Object.keys(check).sort()).toEqual(['advice', 'details', 'id', 'status', 'summary']);
      if (check.status === 'warn' || check.status === 'fail')
        expect(check.advice).toEqual(expect.any(String));
    }
  });
});

describe('doctor with POD_WATCH_SCOPE=node', () => {
  /** Pods on this file's own two nodes: no other test file has pods there, so the counts are exact. */
  const nodeA = uniqueName('doctor-a');
  const nodeB = uniqueName('doctor-b');
  const LOCAL_IP = `${NET}.21`;
  const LOCAL_2_IP = `${NET}.22`;
  const REMOTE_IP = `${NET}.31`;
  /** A pod of node B that has finished: a lookup finds it, and the agent's cache answers for it after. */
  const FINISHED_IP = `${NET}.33`;
  const GONE_IP = `${NET}.251`;
  let ns: string;
  let dir: string;
  const made: [string, string][] = [];

  async function runningPod(name: string, node: string, ip: string, hostNetwork = false): Promise<void> {
    await createPod(c, { namespace: ns, name, nodeName: node, hostNetwork });
    made.push([ns, name]);
    await setPodRunning(c, ns, name, { podIPs: [ip], hostIP: hostNetwork ? ip : '10.128.0.2' });
  }

  /** The drops of the window: every one has a pod of node A on a side, so the agent posts each. */
  const DROPS: [string, string][] = [
    [LOCAL_IP, REMOTE_IP],
    [LOCAL_IP, GONE_IP],
    [LOCAL_IP, FINISHED_IP],
    [LOCAL_IP, FINISHED_IP],
    [LOCAL_2_IP, NODE_IP],
  ];
  const entries = (): JournalEntry[] =>
    DROPS.map(([src, dst], i) => ({
      hostname: nodeA,
      message: dropMessage('calico-packet: ', src, dst, 41000 + i),
    }));

  beforeAll(async () => {
    ns = await createNamespace(c);
    await runningPod('local', nodeA, LOCAL_IP);
    await runningPod('local-2', nodeA, LOCAL_2_IP);
    await runningPod('local-host', nodeA, `${NET}.2`, true);
    await createPod(c, { namespace: ns, name: 'local-pending', nodeName: nodeA });
    made.push([ns, 'local-pending']);
    await runningPod('remote', nodeB, REMOTE_IP);
    await runningPod('finished', nodeB, FINISHED_IP);
    const finished = await c.core.readNamespacedPod({ namespace: ns, name: 'finished' });
    finished.status = { ...finished.status, phase: 'Succeeded' };
    await c.core.replaceNamespacedPodStatus({ namespace: ns, name: 'finished', body: finished });
    dir = await journal(entries());
  });

  afterAll(async () => {
    for (const [namespace, name] of made) await deletePod(c, namespace, name).catch(() => {});
  });

  it("counts only this node's pods, and says which drop addresses the agent would look up", async () => {
    const port = await freePort();
    const env = {
      JOURNAL_DIRECTORY: dir,
      KUBECONFIG: agentKubeconfig,
      POD_WATCH_SCOPE: 'node',
      NODE_NAME: nodeA,
      METRICS_SERVER_PORT: String(port),
    };
    const report = await doctorJson(env);
    expect(report.code).toBe(0);
    expect(report.watch).toEqual({ scope: 'node', nodeName: nodeA });
    // local, local-2 and local-host; not local-pending, nor the pods of node B.
    expect(report.pods).toMatchObject({ running: 3, local: 2, error: null });
    const lookedUp = { hostNetwork: false, via: 'lookup', lookupError: null };
    expect(report.pods?.addresses).toEqual([
      {
        ip: LOCAL_IP,
        count: 4,
        pod: `${ns}/local`,
        node: null,
        hostNetwork: false,
        via: 'watch',
        lookupError: null,
      },
      { ip: FINISHED_IP, count: 2, pod: null, node: null, ...lookedUp },
      {
        ip: NODE_IP,
        count: 1,
        pod: null,
        node: nodeName,
        hostNetwork: false,
        via: 'watch',
        lookupError: null,
      },
      {
        ip: LOCAL_2_IP,
        count: 1,
        pod: `${ns}/local-2`,
        node: null,
        hostNetwork: false,
        via: 'watch',
        lookupError: null,
      },
      { ip: GONE_IP, count: 1, pod: null, node: null, ...lookedUp },
      { ip: REMOTE_IP, count: 1, pod: `${ns}/remote`, node: null, ...lookedUp },
    ]);
    expect(report.lookups).toEqual({
      url: `http://127.0.0.1:${port}/metrics`,
      error: `the agent's metrics were not reachable at http://127.0.0.1:${port}/metrics: ECONNREFUSED`,
      outcomes: null,
      hitRate: null,
      cacheEntries: null,
    });

    const run = await doctor(env);
    expect(section(run.stdout, 'pods')).toMatch(
      new RegExp(
        `^\\[ok\\] {3}pods {9}POD_WATCH_SCOPE=node, NODE_NAME=${nodeA}: 2 Running pods on this node would be indexed \\(and 1 hostNetwork pod\\), \\d+ nodes?; pods of other nodes are looked up by address$`,
      ),
    );
    const addresses = section(run.stdout, 'addresses').split('\n');
    expect(addresses[0]).toBe(
      '[warn] addresses    2 of the 6 most frequent drop addresses match no Running pod or node; 3 of them looked up by address (not on this node)',
    );
    expect(addresses.slice(1, 7).map((line) => line.replace(/^ +\S+ +\d+ drops? {2}/, ''))).toEqual([
      `pod ${ns}/local (on this node)`,
      'unresolved (looked up by address: no Running pod has it)',
      `node ${nodeName}`,
      `pod ${ns}/local-2 (on this node)`,
      'unresolved (looked up by address: no Running pod has it)',
      `pod ${ns}/remote (another node: looked up by address)`,
    ]);
    expect(section(run.stdout, 'lookups')).toBe(
      `[skip] lookups      not checked: the agent's metrics were not reachable at http://127.0.0.1:${port}/metrics: ECONNREFUSED`,
    );

    // The same setup watched cluster-wide: node B's pods are indexed, and nothing is looked up.
    const cluster = await doctorJson({ ...env, POD_WATCH_SCOPE: 'cluster' });
    expect(cluster.pods?.running).toBeGreaterThanOrEqual(5);
    expect(cluster.pods?.local).toBeNull();
    expect(cluster.pods?.addresses.find(({ ip }) => ip === REMOTE_IP)).toMatchObject({
      pod: `${ns}/remote`,
      via: 'watch',
    });
  });

  it("reads the lookups and the cache's hit rate from the running agent's metrics", async () => {
    const { dir: agentDir, file } = await journalDir();
    dirs.push(agentDir);
    const agentEnv = {
      ...(await journalAgentEnv(agentKubeconfig, agentDir)),
      POD_WATCH_SCOPE: 'node',
      NODE_NAME: nodeA,
    };
    dirs.push(agentEnv.CHECKPOINT_DIRECTORY);
    const agent = await agentWith(agentEnv);
    await appendJournal(file, entries());
    const scrape = await waitFor(
      async () => {
        const text = await agent.metrics();
        return metricValue(text, 'kube_iptables_tailer_drops_posted_total') === DROPS.length && text;
      },
      20_000,
      'every drop posted',
    );
    const outcome = (text: string, name: string) =>
      metricValue(text, 'kube_iptables_tailer_pod_lookups_total', `outcome="${name}"`);
    // Found once each (remote, finished), gone not found, then the cache: a miss for it, a hit for each
    // drop of the finished pod (found, but not Running: the index does not name it, so the agent asks).
    expect(outcome(scrape, 'found')).toBe(2);
    expect(outcome(scrape, 'not_found')).toBe(1);
    expect(outcome(scrape, 'hit')).toBeGreaterThanOrEqual(1);
    expect(outcome(scrape, 'miss')).toBeGreaterThanOrEqual(1);

    const env = { ...agentEnv, JOURNAL_DIRECTORY: dir, METRICS_SERVER_PORT: String(agent.port) };
    const report = await doctorJson(env);
    const run = await doctor(env);
    // Nothing asks after the last drop: what doctor read is what the agent still says.
    const after = await agent.metrics();
    const counts = (text: string) => ({
      hit: outcome(text, 'hit'),
      miss: outcome(text, 'miss'),
      found: outcome(text, 'found'),
      not_found: outcome(text, 'not_found'),
      error: outcome(text, 'error'),
      rate_limited: outcome(text, 'rate_limited'),
      coalesced: outcome(text, 'coalesced'),
    });
    const agentSays = counts(after);
    expect(counts(scrape)).toEqual(agentSays);
    const { hit, miss, found, not_found: notFound } = agentSays;
    const answered = hit + miss + found + notFound;
    expect(report.lookups).toEqual({
      url: `http://127.0.0.1:${agent.port}/metrics`,
      error: null,
      outcomes: agentSays,
      hitRate: (hit + miss) / answered,
      // A gauge the agent sets every second, as entries expire: not the same from one scrape to the next.
      cacheEntries: expect.any(Number),
    });
    expect(checkOf(report, 'lookups').status).toBe('ok');
    const [summary, figures, from] = section(run.stdout, 'lookups').split('\n');
    expect(summary).toBe(
      `[ok]   lookups      cache hit rate ${(((hit + miss) / answered) * 100).toFixed(1)}% (${hit + miss} of ${answered} answered lookups from the cache)`,
    );
    expect(figures).toMatch(
      new RegExp(
        `^ {20}answered: hit ${hit}, miss ${miss}, found ${found}, not_found ${notFound}; not yet answered: error ${agentSays.error}, rate_limited ${agentSays.rate_limited}, coalesced ${agentSays.coalesced}; \\d+ address(es)? cached$`,
      ),
    );
    expect(from).toBe(
      `                    read from the running agent at http://127.0.0.1:${agent.port}/metrics, counted since it started`,
    );
  });
});

describe("doctor and Calico's Felix", () => {
  // Calico's CRD for FelixConfiguration, reduced to what doctor reads; the test API server has no Calico.
  const CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: felixconfigurations.crd.projectcalico.org
spec:
  group: crd.projectcalico.org
  scope: Cluster
  names: { kind: FelixConfiguration, plural: felixconfigurations, singular: felixconfiguration }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true }
`;
  let dir: string;
  let file: string;

  beforeAll(async () => {
    dir = await tempDir('doctor-felix');
    dirs.push(dir);
    file = join(dir, 'crd.yaml');
    await writeFile(file, CRD);
    await kubectl(c, ['apply', '-f', file]);
    await kubectl(c, ['wait', '--for=condition=Established', '--timeout=60s', '-f', file]);
    const felix = join(dir, 'felix.yaml');
    await writeFile(
      felix,
      'apiVersion: crd.projectcalico.org/v1\nkind: FelixConfiguration\nmetadata: { name: default }\nspec: { logPrefix: "calico-packet %k %p" }\n',
    );
    await kubectl(c, ['apply', '-f', felix]);
    dir = await journal([{ message: dropMessage('calico-packet np default/web: ', CLIENT_IP, UNKNOWN_IP) }]);
  });

  afterAll(() => kubectl(c, ['delete', '--ignore-not-found', '-f', file]));

  it('reads logPrefix where it may, and says which IPTABLES_LOG_PREFIX names the policies', async () => {
    const plain = await doctorJson({ JOURNAL_DIRECTORY: dir, KUBECONFIG: c.kubeconfig });
    expect(plain.felix).toEqual({
      api: 'crd.projectcalico.org/v1',
      logPrefix: 'calico-packet %k %p',
      reason: null,
      error: null,
    });
    expect(checkOf(plain, 'felix')).toMatchObject({
      status: 'warn',
      advice:
        'set IPTABLES_LOG_PREFIX="calico-packet %k %p", so the agent sees Calico\'s drops and the policy that logged each',
    });
    const template = await doctor({
      JOURNAL_DIRECTORY: dir,
      KUBECONFIG: c.kubeconfig,
      IPTABLES_LOG_PREFIX: 'calico-packet %k %p',
    });
    expect(section(template.stdout, 'felix')).toBe(
      '[ok]   felix        Felix logs with IPTABLES_LOG_PREFIX\'s template "calico-packet %k %p": Events name the policy',
    );
  });

  it('skips the check, saying so, without the permission to read it', async () => {
    const run = await doctor({ JOURNAL_DIRECTORY: dir, KUBECONFIG: agentKubeconfig });
    expect(section(run.stdout, 'felix')).toMatch(
      /^\[skip\] felix +not checked: no permission to read FelixConfiguration default/,
    );
  });
});

describe('doctor on a broken source', () => {
  it('names the prefix the log actually carries when the configured one is wrong', async () => {
    const dir = await journal([
      ...[1, 2, 3, 4].map((i) => ({
        message: dropMessage('calico-drop: ', CLIENT_IP, UNKNOWN_IP, 40000 + i),
      })),
      { message: dropMessage('DROP:', CLIENT_IP, UNKNOWN_IP) },
      { message: 'eth0: link becomes ready' },
    ]);
    const run = await doctor({
      JOURNAL_DIRECTORY: dir,
      KUBECONFIG: agentKubeconfig,
      IPTABLES_LOG_PREFIX: 'calico-packet',
    });
    expect(run.code).toBe(1);
    expect(section(run.stdout, 'prefix')).toBe(
      [
        '[FAIL] prefix       no line with the prefix calico-packet (IPTABLES_LOG_PREFIX), but other LOG prefixes: calico-drop (4), DROP (1)',
        '                    -> set IPTABLES_LOG_PREFIX=calico-drop',
      ].join('\n'),
    );
    expect(run.stdout).toContain('1 problem keeps events from being posted');

    const fixed = await doctor({
      JOURNAL_DIRECTORY: dir,
      KUBECONFIG: agentKubeconfig,
      IPTABLES_LOG_PREFIX: 'calico-drop',
    });
    expect(section(fixed.stdout, 'prefix')).toBe(
      '[ok]   prefix       4 lines with the prefix calico-drop in the last 10 minutes; other LOG prefixes: DROP (1)',
    );
    expect(fixed.code).toBe(0);
  });

  it('exits 1 when the journal directory is missing', async () => {
    const missing = join(await tempDir('doctor-missing'), 'journal');
    dirs.push(missing);
    const report = await doctorJson({ JOURNAL_DIRECTORY: missing, KUBECONFIG: agentKubeconfig });
    expect(report.code).toBe(1);
    expect(report.source).toMatchObject({ readable: false, entries: 0 });
    expect(checkOf(report, 'source')).toMatchObject({
      status: 'fail',
      summary: `cannot read the journal directory ${missing}: it does not exist`,
      advice: expect.stringContaining('JOURNAL_DIRECTORY'),
    });
    expect(checkOf(report, 'window').status).toBe('skip');
  });

  it('exits 1 when JOURNAL_DIRECTORY is a file or holds no journal files', async () => {
    const dir = await tempDir('doctor-not-journal');
    dirs.push(dir);
    await writeFile(join(dir, 'kern.log'), 'not a journal\n');
    const file = await doctorJson({ JOURNAL_DIRECTORY: join(dir, 'kern.log'), KUBECONFIG: agentKubeconfig });
    expect(file.code).toBe(1);
    expect(checkOf(file, 'source').summary).toMatch(/it is not a directory$/);
    const empty = await doctorJson({ JOURNAL_DIRECTORY: dir, KUBECONFIG: agentKubeconfig });
    expect(empty.code).toBe(1);
    expect(checkOf(empty, 'source').summary).toBe(`no journal files in ${dir}`);
  });

  it('exits 1 when the journal directory cannot be read', async () => {
    const parent = await tempDir('doctor-unreadable');
    dirs.push(parent);
    await chmod(parent, 0o755);
    const dir = join(parent, 'journal');
    await appendJournal(join(dir, 'system.journal'), [
      { message: dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP) },
    ]);
    await chmod(dir, 0o700);
    // Root reads any directory: doctor runs as nobody, as a container without the journal's owner would.
    const uid = process.getuid?.() === 0 ? NOBODY : undefined;
    if (uid === undefined) await chmod(dir, 0o000);
    const report = await doctorJson({ JOURNAL_DIRECTORY: dir }, uid);
    await chmod(dir, 0o700);
    expect(report.code).toBe(1);
    expect(checkOf(report, 'source')).toMatchObject({
      status: 'fail',
      summary: `cannot read the journal directory ${dir}: permission denied`,
    });
  });

  it('warns, without failing, when the window holds only old entries', async () => {
    const hourAgoUs = (Date.now() - 3_600_000) * 1000;
    const dir = await journal([
      { message: dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP), realtimeUs: hourAgoUs },
      { message: 'eth0: link becomes ready', realtimeUs: hourAgoUs + 1 },
    ]);
    const run = await doctor({
      JOURNAL_DIRECTORY: dir,
      KUBECONFIG: agentKubeconfig,
      PACKET_DROP_EXPIRATION_MINUTES: '5',
    });
    expect(run.code).toBe(0);
    expect(section(run.stdout, 'window')).toMatch(
      /^\[warn\] window {7}no kernel entries in the last 5 minutes\n {20}-> check that JOURNAL_DIRECTORY /,
    );
    expect(run.stdout).toContain('[ok]   prefix       no LOG lines in the last 5 minutes');
  });

  it('groups parse failures by reason with one escaped example each', async () => {
    const dir = await journal([
      { message: 'calico-packet: IN=eth0 OUT= SRC=nonsense DST=10.0.0.1 LEN=60 PROTO=TCP SPT=1 DPT=2' },
      {
        message: 'calico-packet: IN=eth0 OUT= SRC=10.0.0.\u001b[2J DST=10.0.0.1 LEN=60 PROTO=TCP SPT=1 DPT=2',
      },
      { message: 'calico-packet: IN=eth0 OUT= DST=10.0.0.1 LEN=60 PROTO=TCP SPT=1 DPT=2' },
      { message: 'calico-packet: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 PROTO=TCP SPT=1 DPT=99999' },
      { message: dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP) },
    ]);
    const run = await doctor({ JOURNAL_DIRECTORY: dir, KUBECONFIG: agentKubeconfig });
    expect(run.code).toBe(0);
    expect(section(run.stdout, 'parse')).toBe(
      [
        '[warn] parse        4 of 5 lines with the prefix could not be parsed (1 drop parsed)',
        '                    bad_address (2), e.g. SRC="nonsense"',
        '                    missing_field (1), e.g. no SRC=',
        '                    bad_port (1), e.g. DPT="99999"',
        '                    -> run `parse` on the same log to see every refused line: lines that merely mention the prefix are no LOG output',
      ].join('\n'),
    );
    expect(run.stdout).toMatch(/^[\x20-\x7e\n]*$/);
  });

  it('reads back the lines the agent would from a file over 64 MiB, the first whole one included', async () => {
    const dir = await tempDir('doctor-read-back');
    dirs.push(dir);
    const path = join(dir, 'kern.log');
    const readBack = 64 << 20;
    // The window's first byte starts a line (the byte before it is a newline): that line is read.
    const first = `${new Date().toISOString()} node-a kernel: ${dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP)}\n`;
    const filler = `${'x'.repeat(1023)}\n`;
    const fillers = Math.floor((readBack - first.length) / filler.length);
    const tail = `${'y'.repeat(readBack - first.length - fillers * filler.length - 1)}\n`;
    await writeFile(path, `${'w'.repeat(99)}\n${first}${filler.repeat(fillers)}${tail}`);
    const report = await doctorJson({ IPTABLES_LOG_PATH: path, KUBECONFIG: agentKubeconfig });
    expect(report.source).toMatchObject({ truncated: true, bytesRead: readBack, prefixed: 1, drops: 1 });
  });

  it('reads the window of a log file (IPTABLES_LOG_PATH) by the lines own timestamps', async () => {
    const dir = await tempDir('doctor-file');
    dirs.push(dir);
    const stamp = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
    const line = (msAgo: number, message: string) =>
      `${stamp(msAgo)} node-a kernel: [12345.678901] ${message}`;
    const path = join(dir, 'kern.log');
    await writeFile(
      path,
      [
        line(3_600_000, dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP)),
        line(3_600_000, dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP)),
        line(60_000, dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP)),
        line(30_000, dropMessage('calico-packet: ', CLIENT_IP, NODE_IP)),
        line(20_000, dropMessage('calico-drop: ', CLIENT_IP, UNKNOWN_IP)),
        line(10_000, 'eth0: link becomes ready'),
        `no timestamp ${dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP)}`,
        '',
      ].join('\n'),
    );
    const report = await doctorJson({ IPTABLES_LOG_PATH: path, KUBECONFIG: agentKubeconfig });
    expect(report.code).toBe(0);
    expect(report.source).toMatchObject({
      kind: 'file',
      readable: true,
      journalFiles: null,
      truncated: false,
      entries: 5,
      prefixed: 3,
      drops: 2,
      otherPrefixes: [{ prefix: 'calico-drop', count: 1 }],
      invalid: [{ reason: 'bad_timestamp', count: 1, example: expect.stringMatching(/^no known timestamp/) }],
    });
    expect(report.source.bytesRead).toBeGreaterThan(0);
    expect(checkOf(report, 'parse').advice).toMatch(/PACKET_DROP_LOG_TIME_LAYOUT/);
    expect(report.pods?.addresses.map(({ ip, pod, node }) => [ip, pod ?? node])).toEqual([
      [CLIENT_IP, `${namespace}/client`],
      [NODE_IP, nodeName],
      [UNKNOWN_IP, null],
    ]);

    const missing = await doctorJson({
      IPTABLES_LOG_PATH: join(dir, 'missing.log'),
      KUBECONFIG: agentKubeconfig,
    });
    expect(missing.code).toBe(1);
    expect(checkOf(missing, 'source')).toMatchObject({
      status: 'fail',
      summary: `cannot read ${join(dir, 'missing.log')}: it does not exist`,
      advice: expect.stringContaining('JOURNAL_DIRECTORY=/var/log/journal'),
    });
  });
});

describe('doctor in KMSG_PATH mode', () => {
  it("reads the real ring buffer: the kernel's drop lines count, a line a process wrote does not", async () => {
    const net = KernelNet.start();
    try {
      net.logAndDrop('iptables', ['-p', 'tcp', '--dport', '12865']);
      // More often than any real flow here, so that it would lead the top addresses were it counted.
      const forged = '10.213.0.77';
      for (let n = 0; n < 30; n++) {
        writeFileSync('/dev/kmsg', `${dropMessage('calico-packet: ', forged, net.server.ipv4, 40000 + n)}\n`);
      }
      // Several connection attempts at once: their SYNs and retries put the client among the top addresses.
      await Promise.all([0, 1, 2, 3].map(() => net.tcp(net.server.ipv4, 12865)));
      const report = await doctorJson({ KMSG_PATH: '/dev/kmsg', KUBECONFIG: agentKubeconfig });
      const restrict = Number((await readFile('/proc/sys/kernel/dmesg_restrict', 'utf8')).trim());
      expect(report.source).toMatchObject({
        kind: 'kmsg',
        readable: true,
        kmsg: { dmesgRestrict: restrict },
      });
      expect(report.source.kmsg?.records).toBeGreaterThan(0);
      expect(report.source.drops).toBeGreaterThan(0);
      const addresses = report.source.addresses.map(({ ip }) => ip);
      expect(addresses).toContain(net.client.ipv4);
      expect(addresses).not.toContain(forged);
      expect(checkOf(report, 'source').summary).toMatch(
        /^kernel ring buffer \/dev\/kmsg: \d+ records; kernel\.dmesg_restrict=/,
      );
    } finally {
      net.stop();
    }
  });

  it('exits 1 when KMSG_PATH is not the device, saying how to mount it', async () => {
    const dir = await tempDir('doctor-kmsg');
    dirs.push(dir);
    await writeFile(join(dir, 'kmsg'), 'not a device\n');
    for (const [path, why] of [
      [join(dir, 'kmsg'), 'it is not a character device'],
      [join(dir, 'missing'), 'it does not exist'],
    ] as const) {
      const report = await doctorJson({ KMSG_PATH: path, KUBECONFIG: agentKubeconfig });
      expect(report.code).toBe(1);
      expect(checkOf(report, 'source')).toMatchObject({
        status: 'fail',
        summary: `cannot open ${path}: ${why}`,
        advice: expect.stringContaining('manifests/kmsg-mode/'),
      });
    }
  });
});

describe('doctor on a broken API', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await journal([{ message: dropMessage('calico-packet: ', CLIENT_IP, UNKNOWN_IP) }]);
  });

  it('exits 1 quickly when the API server is not listening', async () => {
    const port = await freePort();
    const run = await doctor({
      JOURNAL_DIRECTORY: dir,
      KUBECONFIG: agentKubeconfig,
      KUBE_API_SERVER: `https://127.0.0.1:${port}`,
    });
    expect(run.code).toBe(1);
    expect(run.ms).toBeLessThan(5000);
    const api = section(run.stdout, 'api').split('\n');
    expect(api[0]).toMatch(
      new RegExp(
        `^\\[FAIL\\] api {10}cannot reach the API server at https://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`,
      ),
    );
    expect(api[1]).toBe(
      "                    -> check KUBE_API_SERVER or KUBECONFIG and that this node's network reaches the API server",
    );
    expect(run.stdout).toContain('[skip] permissions  not checked: the API server cannot be used');
    expect(run.stdout).toContain('[ok]   source');
  });

  it('gives up on an API server that never answers after its time limit', async () => {
    const held: Socket[] = [];
    const server: Server = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const run = await doctor({
        JOURNAL_DIRECTORY: dir,
        KUBECONFIG: agentKubeconfig,
        KUBE_API_SERVER: `https://127.0.0.1:${port}`,
      });
      expect(run.code).toBe(1);
      expect(run.ms).toBeLessThan(15_000);
      expect(run.stdout).toContain(
        `cannot reach the API server at https://127.0.0.1:${port}: no answer within 5 s`,
      );
    } finally {
      for (const socket of held) socket.destroy();
      server.close();
    }
  });

  it('exits 1 and names the permission a ClusterRole without events patch lacks', async () => {
    const shipped = await readFile(join(ROOT, 'manifests/base/rbac.yaml'), 'utf8');
    const name = uniqueName('doctor-nopatch');
    const home = await createNamespace(c);
    const rbac = shipped
      .replaceAll('name: kube-iptables-tailer', `name: ${name}`)
      .replaceAll('namespace: kube-system', `namespace: ${home}`)
      .replace('verbs: ["create", "patch"]', 'verbs: ["create"]');
    expect(rbac).not.toContain('"patch"');
    const file = join(await tempDir('doctor-rbac'), 'rbac.yaml');
    dirs.push(join(file, '..'));
    await writeFile(file, rbac);
    await kubectl(c, ['apply', '-f', file]);
    const kubeconfig = await tokenKubeconfig(c, await createToken(c, home, name));

    const run = await doctor({ JOURNAL_DIRECTORY: dir, KUBECONFIG: kubeconfig });
    expect(run.code).toBe(1);
    expect(section(run.stdout, 'permissions')).toBe(
      [
        '[FAIL] permissions  missing: events patch',
        "                    -> grant events patch to the agent's ServiceAccount: see manifests/base/rbac.yaml",
      ].join('\n'),
    );
    await kubectl(c, ['delete', 'clusterrole,clusterrolebinding', name]);
  });

  it('exits 1 outside a pod with no KUBECONFIG, saying where to run it', async () => {
    const report = await doctorJson({ JOURNAL_DIRECTORY: dir });
    expect(report.code).toBe(1);
    expect(report.api).toMatchObject({ reachable: false, failure: 'not_configured', server: null });
    expect(checkOf(report, 'api').advice).toMatch(/kubectl exec -n kube-system ds\/kube-iptables-tailer/);
  });
});

describe('doctor usage', () => {
  it('exits 2 on unknown options and arguments, as the other commands', async () => {
    for (const args of [['--bogus'], ['extra']]) {
      const run = await doctor({ JOURNAL_DIRECTORY: '/nonexistent' }, args);
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^kube-iptables-tailer: /);
    }
  });

  it('exits 2 on a configuration the agent would refuse', async () => {
    const none = await doctor({});
    expect(none).toMatchObject({ code: 2, stdout: '' });
    expect(none.stderr).toContain('none of JOURNAL_DIRECTORY, IPTABLES_LOG_PATH and KMSG_PATH is set');
    const bad = await doctor({
      JOURNAL_DIRECTORY: '/var/log/journal',
      PACKET_DROP_EXPIRATION_MINUTES: 'ten',
    });
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toContain('PACKET_DROP_EXPIRATION_MINUTES');
    // As `run` refuses it: the node-scoped watch needs the node's name.
    const nameless = await doctor({ JOURNAL_DIRECTORY: '/var/log/journal', POD_WATCH_SCOPE: 'node' });
    expect(nameless).toMatchObject({ code: 2, stdout: '' });
    expect(nameless.stderr).toContain('NODE_NAME is not set: POD_WATCH_SCOPE=node (the default)');
  });

  it('is listed in the usage', async () => {
    const run = await new Promise<string>((resolve) => {
      const child = spawn(NODE, ['agent/cli.ts', '--help'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
      });
      child.once('close', () => resolve(out));
    });
    expect(run).toContain('doctor [--json]');
  });
});
