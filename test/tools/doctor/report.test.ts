import { describe, expect, it } from 'vitest';
import { REQUIRED_PERMISSIONS } from '../../../agent/tools/doctor/api-check.ts';
import { buildReport, prefixList, renderJson, renderText } from '../../../agent/tools/doctor/report.ts';
import type {
  ApiReport,
  Check,
  CheckId,
  DoctorReport,
  FelixReport,
  PodsReport,
  SourceReport,
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

function pods(overrides: Partial<PodsReport> = {}): PodsReport {
  return {
    running: 12,
    error: null,
    errorStatus: null,
    nodes: 3,
    nodesError: null,
    addresses: [{ ip: '10.4.0.4', count: 7, pod: 'default/netperf-client', hostNetwork: false, node: null }],
    ...overrides,
  };
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
    const report = buildReport(source(), api(), pods(), felix());
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
      ['felix', 'ok'],
    ]);
    expect(checkOf(report.checks, 'pods').summary).toBe('12 Running pods would be indexed, 3 nodes');
  });

  it('fails on a wrong prefix and says which one to set', () => {
    const report = buildReport(
      source({
        prefixed: 0,
        drops: 0,
        addresses: [],
        otherPrefixes: [
          { prefix: '', count: 40 },
          { prefix: 'calico-drop', count: 12 },
        ],
      }),
      api(),
      pods({ addresses: [] }),
      null,
    );
    expect(report.exitCode).toBe(1);
    const prefix = checkOf(report.checks, 'prefix');
    expect(prefix).toMatchObject({ status: 'fail', advice: 'set IPTABLES_LOG_PREFIX=calico-drop' });
    expect(prefix.summary).toContain('calico-drop (12)');
    expect(prefix.summary).toContain('(no prefix) (40)');
  });

  it('asks for a prefix when the only LOG lines have none', () => {
    const report = buildReport(
      source({ prefixed: 0, drops: 0, addresses: [], otherPrefixes: [{ prefix: '', count: 3 }] }),
      api(),
      pods({ addresses: [] }),
      null,
    );
    expect(checkOf(report.checks, 'prefix').advice).toMatch(/give the LOG rule a prefix/);
  });

  it('is fine with no LOG line at all: nothing was dropped', () => {
    const report = buildReport(
      source({ prefixed: 0, drops: 0, addresses: [] }),
      api(),
      pods({ addresses: [] }),
      null,
    );
    expect(report.exitCode).toBe(0);
    expect(checkOf(report.checks, 'prefix').status).toBe('ok');
    expect(checkOf(report.checks, 'addresses').status).toBe('skip');
  });

  it('warns, without blocking, when the window holds no kernel entry', () => {
    const report = buildReport(
      source({ entries: 0, prefixed: 0, drops: 0, addresses: [] }),
      api(),
      pods({ addresses: [] }),
      null,
    );
    expect(report.exitCode).toBe(0);
    expect(checkOf(report.checks, 'window')).toMatchObject({
      status: 'warn',
      summary: 'no kernel entries in the last 10 minutes',
    });
    expect(checkOf(report.checks, 'window').advice).not.toBeNull();
  });

  it('fails on an unreadable source and skips what depends on it', () => {
    const report = buildReport(
      source({ readable: false, error: 'cannot read the journal directory /x: it does not exist' }),
      api(),
      pods(),
      null,
    );
    expect(report.exitCode).toBe(1);
    expect(checkOf(report.checks, 'source')).toMatchObject({
      status: 'fail',
      summary: expect.stringContaining('/x'),
    });
    expect(checkOf(report.checks, 'source').advice).toMatch(/JOURNAL_DIRECTORY/);
    for (const id of ['window', 'prefix', 'parse'] as const)
      expect(checkOf(report.checks, id).status).toBe('skip');
  });

  it('warns on parse failures, one line per reason with its example', () => {
    const report = buildReport(
      source({
        prefixed: 10,
        drops: 7,
        invalid: [
          { reason: 'bad_address', count: 2, example: 'SRC="nonsense"' },
          { reason: 'bad_timestamp', count: 1, example: 'no known timestamp at the start of "x"' },
        ],
      }),
      api(),
      pods(),
      null,
    );
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
    const report = buildReport(source(), api(UNREACHABLE), null, null);
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
    const report = buildReport(source(), api({ permissions }), pods(), null);
    expect(report.exitCode).toBe(1);
    expect(checkOf(report.checks, 'permissions')).toMatchObject({
      status: 'fail',
      summary: 'missing: events patch',
      advice: "grant events patch to the agent's ServiceAccount: see manifests/base/rbac.yaml",
    });
  });

  it('warns about drop addresses that match no pod or node, listing each address', () => {
    const report = buildReport(
      source(),
      api(),
      pods({
        addresses: [
          { ip: '10.4.0.4', count: 7, pod: 'default/client', hostNetwork: false, node: null },
          { ip: '10.128.0.2', count: 3, pod: null, hostNetwork: false, node: 'node-a' },
          { ip: '8.8.8.8', count: 1, pod: null, hostNetwork: false, node: null },
        ],
      }),
      null,
    );
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
    const report = buildReport(
      source(),
      api(),
      pods({ running: null, error: 'HTTP 403: forbidden', errorStatus: 403, addresses: [] }),
      null,
    );
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
    const text = renderText(buildReport(source(), api(UNREACHABLE), null, null));
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
    const report = buildReport(source(), api(), pods(), null);
    expect(JSON.parse(renderJson(report))).toEqual(report);
  });
});

describe('felix check', () => {
  const felixOf = (report: DoctorReport) => checkOf(report.checks, 'felix');

  it('passes a matching plain prefix, suggesting the placeholder setting that names policies', () => {
    const check = felixOf(buildReport(source(), api(), pods(), felix({ logPrefix: 'calico-packet: ' })));
    expect(check).toMatchObject({
      status: 'ok',
      summary: 'Felix logs with IPTABLES_LOG_PREFIX\'s prefix "calico-packet"',
    });
    expect(check.details).toEqual([
      'to name the policy in Events (Calico v3.30.6, v3.31.4, v3.32.0 or later): set Felix\'s logPrefix and IPTABLES_LOG_PREFIX to "calico-packet %k %p"',
    ]);
  });

  it('passes a matching template: Events name the policy', () => {
    const report = buildReport(
      source({ prefix: 'calico-packet %k %p' }),
      api(),
      pods(),
      felix({ logPrefix: 'calico-packet %k %p' }),
    );
    expect(felixOf(report)).toMatchObject({ status: 'ok', details: [] });
    expect(felixOf(report).summary).toContain('Events name the policy');
  });

  it('warns when Felix logs with another prefix, and says which to set', () => {
    const report = buildReport(source(), api(), pods(), felix({ logPrefix: 'drop %k %n' }));
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
      const check = felixOf(buildReport(source(), api(), pods(), report));
      expect(check.status).toBe('skip');
      expect(check.summary).toMatch(why);
    }
  });
});
