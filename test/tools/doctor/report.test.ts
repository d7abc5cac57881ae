import { describe, expect, it } from 'vitest';
import { REQUIRED_PERMISSIONS } from '../../../agent/tools/doctor/api-check.ts';
import {
  buildReport,
  type DoctorInputs,
  prefixList,
  renderJson,
  renderText,
} from '../../../agent/tools/doctor/report.ts';
import type {
  ApiReport,
  Check,
  CheckId,
  DoctorReport,
  FelixReport,
  LookupsReport,
  PodsReport,
  ResolvedAddress,
  SourceReport,
  WatchReport,
} from '../../../agent/tools/doctor/types.ts';

function source(overrides: Partial<SourceReport> = {}): SourceReport {
  return {
    kind: 'journal',
    path: '/var/log/journal',
    prefix: 'calico-packet',
    windowMinutes: 10,
    since: '2026-04-05T18:31:42.000Z',
    readable: true,
    error: null,
    journalFiles: 2,
    bytesRead: null,
    truncated: false,
    kmsg: null,
    entries: 120,
    prefixed: 7,
    drops: 7,
    otherPrefixes: [],
    invalid: [],
    addresses: [{ ip: '10.4.0.4', count: 7 }],
    ...overrides,
  };
}

function api(overrides: Partial<ApiReport> = {}): ApiReport {
  return {
    server: 'https://10.0.0.1:443',
    credentials: 'in-cluster',
    reachable: true,
    failure: null,
    error: null,
    version: 'v1.33.0',
    permissions: REQUIRED_PERMISSIONS.map((p) => ({ ...p, allowed: true, error: null })),
    ...overrides,
  };
}

/** A drop address as the agent's watches resolve it; `node` or `pod` as given. */
function address(ip: string, count: number, overrides: Partial<ResolvedAddress> = {}): ResolvedAddress {
  return {
    ip,
    count,
    pod: null,
    hostNetwork: false,
    node: null,
    via: 'watch',
    lookupError: null,
    ...overrides,
  };
}

function pods(overrides: Partial<PodsReport> = {}): PodsReport {
  return {
    running: 12,
    local: null,
    error: null,
    errorStatus: null,
    nodes: 3,
    nodesError: null,
    addresses: [address('10.4.0.4', 7, { pod: 'default/netperf-client' })],
    ...overrides,
  };
}

const CLUSTER: WatchReport = { scope: 'cluster', nodeName: null };
const NODE_A: WatchReport = { scope: 'node', nodeName: 'node-a' };
const NOT_READ: LookupsReport = { url: null, error: null, outcomes: null, hitRate: null, cacheEntries: null };

/** A report of a healthy cluster-scoped setup, but for the parts given. */
function reportOf(parts: Partial<DoctorInputs> = {}): DoctorReport {
  return buildReport({
    source: source(),
    api: api(),
    pods: pods(),
    felix: null,
    watch: CLUSTER,
    lookups: NOT_READ,
    ...parts,
  });
}

function checkOf(checks: readonly Check[], id: CheckId): Check {
  const found = checks.find((c) => c.id === id);
  if (found === undefined) throw new Error(`no ${id} check`);
  return found;
}

function felix(overrides: Partial<FelixReport> = {}): FelixReport {
  return {
    api: 'crd.projectcalico.org/v1',
    logPrefix: 'calico-packet',
    reason: null,
    error: null,
    ...overrides,
  };
}

const UNREACHABLE: Partial<ApiReport> = {
  reachable: false,
  failure: 'unreachable',
  error: 'ECONNREFUSED',
  version: null,
  permissions: [],
};

describe('buildReport', () => {
  it('passes a healthy setup with every check ok', () => {
    const report = reportOf({ felix: felix() });
    expect(report.exitCode).toBe(0);
    expect(report.checks.map((c) => [c.id, c.status])).toEqual([
      ['source', 'ok'],
      ['window', 'ok'],
      ['prefix', 'ok'],
      ['parse', 'ok'],
      ['api', 'ok'],
      ['permissions', 'ok'],
      ['pods', 'ok'],
      ['addresses', 'ok'],
      ['lookups', 'ok'],
      ['felix', 'ok'],
    ]);
    expect(checkOf(report.checks, 'pods').summary).toBe(
      'POD_WATCH_SCOPE=cluster: 12 Running pods would be indexed, 3 nodes',
    );
    expect(checkOf(report.checks, 'lookups')).toMatchObject({
      status: 'ok',
      summary: 'not used: POD_WATCH_SCOPE=cluster watches every pod',
    });
  });

  it('fails on a wrong prefix and says which one to set', () => {
    const report = reportOf({
      source: source({
        prefixed: 0,
        drops: 0,
        addresses: [],
        otherPrefixes: [
          { prefix: '', count: 40 },
          { prefix: 'calico-drop', count: 12 },
        ],
      }),
      pods: pods({ addresses: [] }),
    });
    expect(report.exitCode).toBe(1);
    const prefix = checkOf(report.checks, 'prefix');
    expect(prefix).toMatchObject({ status: 'fail', advice: 'set IPTABLES_LOG_PREFIX=calico-drop' });
    expect(prefix.summary).toContain('calico-drop (12)');
    expect(prefix.summary).toContain('(no prefix) (40)');
  });

  it('asks for a prefix when the only LOG lines have none', () => {
    const report = reportOf({
      source: source({ prefixed: 0, drops: 0, addresses: [], otherPrefixes: [{ prefix: '', count: 3 }] }),
      pods: pods({ addresses: [] }),
    });
    expect(checkOf(report.checks, 'prefix').advice).toMatch(/give the LOG rule a prefix/);
  });

  it('is fine with no LOG line at all: nothing was dropped', () => {
    const report = reportOf({
      source: source({ prefixed: 0, drops: 0, addresses: [] }),
      pods: pods({ addresses: [] }),
    });
    expect(report.exitCode).toBe(0);
    expect(checkOf(report.checks, 'prefix').status).toBe('ok');
    expect(checkOf(report.checks, 'addresses').status).toBe('skip');
  });

  it('warns, without blocking, when the window holds no kernel entry', () => {
    const report = reportOf({
      source: source({ entries: 0, prefixed: 0, drops: 0, addresses: [] }),
      pods: pods({ addresses: [] }),
    });
    expect(report.exitCode).toBe(0);
    expect(checkOf(report.checks, 'window')).toMatchObject({
      status: 'warn',
      summary: 'no kernel entries in the last 10 minutes',
    });
    expect(checkOf(report.checks, 'window').advice).not.toBeNull();
  });

  it('fails on an unreadable source and skips what depends on it', () => {
    const report = reportOf({
      source: source({ readable: false, error: 'cannot read the journal directory /x: it does not exist' }),
    });
    expect(report.exitCode).toBe(1);
    expect(checkOf(report.checks, 'source')).toMatchObject({
      status: 'fail',
      summary: expect.stringContaining('/x'),
    });
    expect(checkOf(report.checks, 'source').advice).toMatch(/JOURNAL_DIRECTORY/);
    for (const id of ['window', 'prefix', 'parse'] as const)
      expect(checkOf(report.checks, id).status).toBe('skip');
  });

  it('kmsg mode: counts the ring buffer, says what reading it needs, and how to mount it when it cannot', () => {
    const kmsgSource = (overrides: Partial<SourceReport>) =>
      source({ kind: 'kmsg', path: '/dev/kmsg', journalFiles: null, ...overrides });
    const readable = reportOf({ source: kmsgSource({ kmsg: { records: 428, dmesgRestrict: 1 } }) });
    expect(checkOf(readable.checks, 'source')).toMatchObject({
      status: 'ok',
      summary:
        'kernel ring buffer /dev/kmsg: 428 records; kernel.dmesg_restrict=1: reading needs CAP_SYSLOG (privileged has it)',
    });
    expect(checkOf(readable.checks, 'window').summary).toBe('120 kernel records in the last 10 minutes');
    expect(renderText(readable).split('\n')[0]).toMatch(
      /^kube-iptables-tailer doctor: KMSG_PATH=\/dev\/kmsg, /,
    );
    const open = reportOf({ source: kmsgSource({ kmsg: { records: 3, dmesgRestrict: 0 } }) });
    expect(checkOf(open.checks, 'source').summary).toContain(
      'kernel.dmesg_restrict=0: reading needs no capability',
    );
    const refused = reportOf({
      source: kmsgSource({
        readable: false,
        error: 'cannot open /dev/kmsg: permission denied',
        kmsg: { records: 0, dmesgRestrict: 1 },
      }),
    });
    expect(checkOf(refused.checks, 'source')).toMatchObject({
      status: 'fail',
      advice: expect.stringContaining('manifests/kmsg-mode/'),
      details: ['kernel.dmesg_restrict=1: reading needs CAP_SYSLOG (privileged has it)'],
    });
  });

  it('warns on parse failures, one line per reason with its example', () => {
    const report = reportOf({
      source: source({
        prefixed: 10,
        drops: 7,
        invalid: [
          { reason: 'bad_address', count: 2, example: 'SRC="nonsense"' },
          { reason: 'bad_timestamp', count: 1, example: 'no known timestamp at the start of "x"' },
        ],
      }),
    });
    const parse = checkOf(report.checks, 'parse');
    expect(report.exitCode).toBe(0);
    expect(parse.status).toBe('warn');
    expect(parse.summary).toBe('3 of 10 lines with the prefix could not be parsed (7 drops parsed)');
    expect(parse.details).toEqual([
      'bad_address (2), e.g. SRC="nonsense"',
      'bad_timestamp (1), e.g. no known timestamp at the start of "x"',
    ]);
    expect(parse.advice).toMatch(/PACKET_DROP_LOG_TIME_LAYOUT/);
  });

  it('fails when the API cannot be reached and skips the checks that need it', () => {
    const report = reportOf({ api: api(UNREACHABLE), pods: null });
    expect(report.exitCode).toBe(1);
    expect(checkOf(report.checks, 'api').summary).toBe(
      'cannot reach the API server at https://10.0.0.1:443: ECONNREFUSED',
    );
    for (const id of ['permissions', 'pods', 'addresses'] as const) {
      expect(checkOf(report.checks, id).status).toBe('skip');
    }
  });

  it('names each missing permission and points at the shipped RBAC', () => {
    const permissions = api().permissions.map((p) =>
      p.resource === 'events' && p.verb === 'patch' ? { ...p, allowed: false } : p,
    );
    const report = reportOf({ api: api({ permissions }) });
    expect(report.exitCode).toBe(1);
    expect(checkOf(report.checks, 'permissions')).toMatchObject({
      status: 'fail',
      summary: 'missing: events patch',
      advice: "grant events patch to the agent's ServiceAccount: see manifests/base/rbac.yaml",
    });
  });

  it('warns about drop addresses that match no pod or node, listing each address', () => {
    const report = reportOf({
      pods: pods({
        addresses: [
          address('10.4.0.4', 7, { pod: 'default/client' }),
          address('10.128.0.2', 3, { node: 'node-a' }),
          address('8.8.8.8', 1),
        ],
      }),
    });
    const addresses = checkOf(report.checks, 'addresses');
    expect(report.exitCode).toBe(0);
    expect(addresses.status).toBe('warn');
    expect(addresses.summary).toBe('1 of the 3 most frequent drop addresses match no Running pod or node');
    expect(addresses.details).toEqual([
      '10.4.0.4       7 drops  pod default/client',
      '10.128.0.2     3 drops  node node-a',
      '8.8.8.8         1 drop  unresolved',
    ]);
  });

  it('fails when Running pods cannot be listed', () => {
    const report = reportOf({
      pods: pods({ running: null, error: 'HTTP 403: forbidden', errorStatus: 403, addresses: [] }),
    });
    expect(checkOf(report.checks, 'pods')).toMatchObject({
      status: 'fail',
      advice: 'grant pods list: see manifests/base/rbac.yaml',
    });
  });
});

describe('prefixList', () => {
  it('names the first ones and counts the rest', () => {
    const prefixes = ['a', 'b', 'c'].map((prefix, i) => ({ prefix, count: 10 - i }));
    expect(prefixList(prefixes, 2)).toBe('a (10), b (9) and 1 more');
  });
});

describe('rendering', () => {
  it('prints one line per check, advice under failures, and a verdict', () => {
    const text = renderText(reportOf({ api: api(UNREACHABLE), pods: null }));
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'kube-iptables-tailer doctor: JOURNAL_DIRECTORY=/var/log/journal, IPTABLES_LOG_PREFIX=calico-packet, the last 10 minutes',
    );
    expect(lines).toContain('[ok]   source       journal /var/log/journal: 2 journal files');
    expect(lines).toContain(
      '[FAIL] api          cannot reach the API server at https://10.0.0.1:443: ECONNREFUSED',
    );
    expect(
      lines[
        lines.indexOf(
          '[FAIL] api          cannot reach the API server at https://10.0.0.1:443: ECONNREFUSED',
        ) + 1
      ],
    ).toMatch(/^ {20}-> check KUBE_API_SERVER/);
    expect(lines.at(-1)).toBe('1 problem keeps events from being posted; 0 warnings');
  });

  it('prints the whole report as JSON', () => {
    const report = reportOf();
    expect(JSON.parse(renderJson(report))).toEqual(report);
  });
});

describe('felix check', () => {
  const felixOf = (report: DoctorReport) => checkOf(report.checks, 'felix');

  it('passes a matching plain prefix, suggesting the placeholder setting that names policies', () => {
    const check = felixOf(reportOf({ felix: felix({ logPrefix: 'calico-packet: ' }) }));
    expect(check).toMatchObject({
      status: 'ok',
      summary: 'Felix logs with IPTABLES_LOG_PREFIX\'s prefix "calico-packet"',
    });
    expect(check.details).toEqual([
      'to name the policy in Events (Calico v3.30.6, v3.31.4, v3.32.0 or later): set Felix\'s logPrefix and IPTABLES_LOG_PREFIX to "calico-packet %k %p"',
    ]);
  });

  it('passes a matching template: Events name the policy', () => {
    const report = reportOf({
      source: source({ prefix: 'calico-packet %k %p' }),
      felix: felix({ logPrefix: 'calico-packet %k %p' }),
    });
    expect(felixOf(report)).toMatchObject({ status: 'ok', details: [] });
    expect(felixOf(report).summary).toContain('Events name the policy');
  });

  it('warns when Felix logs with another prefix, and says which to set', () => {
    const report = reportOf({ felix: felix({ logPrefix: 'drop %k %n' }) });
    expect(felixOf(report)).toMatchObject({
      status: 'warn',
      summary:
        'Felix logs with the prefix "drop %k %n" (FelixConfiguration default, crd.projectcalico.org/v1), but IPTABLES_LOG_PREFIX is "calico-packet"',
      advice:
        'set IPTABLES_LOG_PREFIX="drop %k %n", so the agent sees Calico\'s drops and the policy that logged each',
    });
    expect(report.exitCode).toBe(0);
  });

  it('skips, saying why, without permission, without Calico, or without the API', () => {
    const reasons = [
      [
        felix({ api: null, logPrefix: null, reason: 'forbidden', error: '403' }),
        /no permission to read FelixConfiguration/,
      ],
      [felix({ api: null, logPrefix: null, reason: 'not_found' }), /no Calico FelixConfiguration default/],
      [
        felix({ api: null, logPrefix: null, reason: 'error', error: 'no answer within 5 s' }),
        /no answer within 5 s/,
      ],
      [null, /the API could not be used/],
    ] as const;
    for (const [report, why] of reasons) {
      const check = felixOf(reportOf({ felix: report }));
      expect(check.status).toBe('skip');
      expect(check.summary).toMatch(why);
    }
  });
});

describe('POD_WATCH_SCOPE=node', () => {
  const COUNTED = { hit: 6, miss: 9, found: 4, not_found: 1, error: 2, rate_limited: 0, coalesced: 3 };
  const LOOKED_UP: LookupsReport = {
    url: 'http://127.0.0.1:9090/metrics',
    error: null,
    outcomes: COUNTED,
    hitRate: 0.75,
    cacheEntries: 5,
  };
  const nodePods = (overrides: Partial<PodsReport> = {}) =>
    pods({
      running: 5,
      local: 4,
      addresses: [
        address('10.4.0.4', 7, { pod: 'default/client' }),
        address('10.4.1.9', 5, { pod: 'default/server', via: 'lookup' }),
        address('10.128.0.3', 3, { node: 'node-b' }),
        address('10.4.2.250', 2, { via: 'lookup' }),
        address('10.4.3.7', 1, { via: 'lookup', lookupError: 'no answer within 5 s' }),
      ],
      ...overrides,
    });
  const nodeReport = (parts: Partial<DoctorInputs> = {}) =>
    reportOf({ pods: nodePods(), watch: NODE_A, lookups: LOOKED_UP, ...parts });

  it("states the mode and counts this node's pods that get Events, hostNetwork ones beside", () => {
    expect(checkOf(nodeReport().checks, 'pods')).toMatchObject({
      status: 'ok',
      summary:
        'POD_WATCH_SCOPE=node, NODE_NAME=node-a: 4 Running pods on this node would be indexed (and 1 hostNetwork pod), 3 nodes; pods of other nodes are looked up by address',
    });
    const none = nodeReport({ pods: nodePods({ running: 0, local: 0 }) });
    expect(checkOf(none.checks, 'pods').summary).toMatch(
      /: 0 Running pods on this node would be indexed, 3 nodes;/,
    );
    const unusable = nodeReport({ api: api(UNREACHABLE), pods: null });
    expect(checkOf(unusable.checks, 'pods').summary).toBe(
      'not checked (POD_WATCH_SCOPE=node, NODE_NAME=node-a): the API server cannot be used',
    );
  });

  it('says per address whether it is local or would be looked up, and how the lookup went', () => {
    const addresses = checkOf(nodeReport().checks, 'addresses');
    expect(addresses).toMatchObject({
      status: 'warn',
      summary:
        '2 of the 5 most frequent drop addresses match no Running pod or node; 3 of them looked up by address (not on this node)',
    });
    expect(addresses.details).toEqual([
      '10.4.0.4       7 drops  pod default/client (on this node)',
      '10.4.1.9       5 drops  pod default/server (another node: looked up by address)',
      '10.128.0.3     3 drops  node node-b',
      '10.4.2.250     2 drops  unresolved (looked up by address: no Running pod has it)',
      '10.4.3.7        1 drop  unresolved (lookup by address failed: no answer within 5 s)',
    ]);
    const local = nodeReport({
      pods: nodePods({ addresses: [address('10.4.0.4', 7, { pod: 'default/client' })] }),
    });
    expect(checkOf(local.checks, 'addresses').summary).toBe(
      'all of the most frequent drop address resolve to a pod or node',
    );
  });

  it("reports the running agent's lookups by outcome and the cache hit rate, informational", () => {
    const report = nodeReport();
    expect(report.exitCode).toBe(0);
    expect(checkOf(report.checks, 'lookups')).toEqual({
      id: 'lookups',
      status: 'ok',
      summary: 'cache hit rate 75.0% (15 of 20 answered lookups from the cache)',
      advice: null,
      details: [
        'answered: hit 6, miss 9, found 4, not_found 1; not yet answered: error 2, rate_limited 0, coalesced 3; 5 addresses cached',
        'read from the running agent at http://127.0.0.1:9090/metrics, counted since it started',
      ],
    });
  });

  it('says when no lookup was answered yet, and skips the figures when the agent cannot be reached', () => {
    const idle = nodeReport({
      lookups: {
        ...LOOKED_UP,
        outcomes: { ...COUNTED, hit: 0, miss: 0, found: 0, not_found: 0 },
        hitRate: null,
      },
    });
    expect(checkOf(idle.checks, 'lookups')).toMatchObject({
      status: 'ok',
      summary: "no lookup answered yet: no drop named an address outside this node's pods and the nodes",
    });
    const unreachable = nodeReport({
      lookups: {
        ...NOT_READ,
        url: 'http://127.0.0.1:9090/metrics',
        error: "the agent's metrics were not reachable at http://127.0.0.1:9090/metrics: ECONNREFUSED",
      },
    });
    expect(unreachable.exitCode).toBe(0);
    expect(checkOf(unreachable.checks, 'lookups')).toMatchObject({
      status: 'skip',
      summary:
        "not checked: the agent's metrics were not reachable at http://127.0.0.1:9090/metrics: ECONNREFUSED",
      details: [],
    });
  });

  it('prints the mode, the local pods, the addresses and the lookups in the text report', () => {
    const lines = renderText(nodeReport()).split('\n');
    const from = lines.findIndex((line) => line.startsWith('[ok]   pods'));
    expect(lines.slice(from, from + 11)).toEqual([
      '[ok]   pods         POD_WATCH_SCOPE=node, NODE_NAME=node-a: 4 Running pods on this node would be indexed (and 1 hostNetwork pod), 3 nodes; pods of other nodes are looked up by address',
      '[warn] addresses    2 of the 5 most frequent drop addresses match no Running pod or node; 3 of them looked up by address (not on this node)',
      '                    10.4.0.4       7 drops  pod default/client (on this node)',
      '                    10.4.1.9       5 drops  pod default/server (another node: looked up by address)',
      '                    10.128.0.3     3 drops  node node-b',
      '                    10.4.2.250     2 drops  unresolved (looked up by address: no Running pod has it)',
      '                    10.4.3.7        1 drop  unresolved (lookup by address failed: no answer within 5 s)',
      expect.stringMatching(/^ {20}-> check these addresses/),
      '[ok]   lookups      cache hit rate 75.0% (15 of 20 answered lookups from the cache)',
      '                    answered: hit 6, miss 9, found 4, not_found 1; not yet answered: error 2, rate_limited 0, coalesced 3; 5 addresses cached',
      '                    read from the running agent at http://127.0.0.1:9090/metrics, counted since it started',
    ]);
  });

  it('puts the mode and the lookups in the JSON', () => {
    const report = nodeReport();
    const json = JSON.parse(renderJson(report)) as DoctorReport;
    expect(json).toEqual(report);
    expect(json.watch).toEqual({ scope: 'node', nodeName: 'node-a' });
    expect(json.lookups.hitRate).toBe(0.75);
    expect(json.pods?.local).toBe(4);
  });
});
