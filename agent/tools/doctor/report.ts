/**
 * doctor's verdicts and their rendering: pure functions of the source, API, pod, lookup and Felix reports. A
 * `fail` is something that keeps events from being posted (exit 1); a `warn` is worth a look but blocks nothing.
 */

import type { LookupOutcome } from '../../locator/pod-lookup.ts';
import { normalizePrefix, parseTemplate } from '../../prefix-template.ts';
import type {
  ApiReport,
  Check,
  CheckId,
  DoctorReport,
  FelixReport,
  LookupsReport,
  PodsReport,
  PrefixCount,
  ResolvedAddress,
  SourceReport,
  Status,
  WatchReport,
} from './types.ts';

/** What the checks are made of: everything in the report but the verdicts. */
export type DoctorInputs = Omit<DoctorReport, 'exitCode' | 'checks'>;

const RBAC = 'manifests/base/rbac.yaml';
/** Other prefixes named in a one-line summary; the JSON has up to 20. */
const PREFIXES_IN_SUMMARY = 5;

function check(
  id: CheckId,
  status: Status,
  summary: string,
  advice: string | null = null,
  details: string[] = [],
): Check {
  return { id, status, summary, advice, details };
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

function prefixLabel(prefix: string): string {
  return prefix === '' ? '(no prefix)' : prefix;
}

/** `calico-drop (12), DROP (3)`, the most frequent first. */
export function prefixList(prefixes: readonly PrefixCount[], limit = PREFIXES_IN_SUMMARY): string {
  const shown = prefixes.slice(0, limit).map(({ prefix, count }) => `${prefixLabel(prefix)} (${count})`);
  const more = prefixes.length - limit;
  return more > 0 ? `${shown.join(', ')} and ${more} more` : shown.join(', ');
}

function windowText(source: SourceReport): string {
  return `the last ${plural(source.windowMinutes, 'minute')}`;
}

/** What reading /dev/kmsg needs on this node, by kernel.dmesg_restrict. */
function kmsgAccess(dmesgRestrict: number | null): string {
  if (dmesgRestrict === null) return 'kernel.dmesg_restrict unknown: reading may need CAP_SYSLOG';
  return dmesgRestrict === 0
    ? 'kernel.dmesg_restrict=0: reading needs no capability'
    : `kernel.dmesg_restrict=${dmesgRestrict}: reading needs CAP_SYSLOG (privileged has it)`;
}

const UNREADABLE_ADVICE: Record<SourceReport['kind'], string> = {
  journal:
    "mount the host's journal read-only and set JOURNAL_DIRECTORY to it (/var/log/journal, or /run/log/journal when the journal is volatile)",
  file: "set IPTABLES_LOG_PATH to the file the host's syslog writes kernel messages to, or use JOURNAL_DIRECTORY=/var/log/journal on systemd hosts",
  kmsg: "mount the host's /dev/kmsg read-only and run the container privileged (manifests/kmsg-mode/): the container runtime lets no unprivileged container open it, and it needs CAP_SYSLOG where kernel.dmesg_restrict=1",
};

function sourceCheck(source: SourceReport): Check {
  if (!source.readable) {
    const details = source.kmsg === null ? [] : [kmsgAccess(source.kmsg.dmesgRestrict)];
    const summary = source.error ?? `cannot read ${source.path}`;
    return check('source', 'fail', summary, UNREADABLE_ADVICE[source.kind], details);
  }
  if (source.kind === 'journal') {
    return check(
      'source',
      'ok',
      `journal ${source.path}: ${plural(source.journalFiles ?? 0, 'journal file')}`,
    );
  }
  if (source.kmsg !== null) {
    return check(
      'source',
      'ok',
      `kernel ring buffer ${source.path}: ${plural(source.kmsg.records, 'record')}; ${kmsgAccess(source.kmsg.dmesgRestrict)}`,
    );
  }
  const read = `${source.bytesRead ?? 0} bytes read`;
  return check(
    'source',
    'ok',
    `file ${source.path}: ${source.truncated ? `${read} from its end (only the last 64 MiB are read)` : read}`,
  );
}

const WINDOW_UNITS: Record<SourceReport['kind'], [string, string]> = {
  journal: ['kernel entry', 'kernel entries'],
  file: ['line', 'lines'],
  kmsg: ['kernel record', 'kernel records'],
};

const EMPTY_WINDOW_ADVICE: Record<SourceReport['kind'], string> = {
  journal:
    "check that JOURNAL_DIRECTORY holds this node's current journal and that the node's clock is right",
  file: 'check that IPTABLES_LOG_PATH is the file kernel messages go to now, not a rotated copy, and that its timestamps are right',
  kmsg: 'the kernel logged nothing lately, or its ring buffer is small enough to have wrapped since (dmesg shows what it holds)',
};

function windowCheck(source: SourceReport): Check {
  const [one, many] = WINDOW_UNITS[source.kind];
  if (!source.readable) return check('window', 'skip', 'not checked: the source cannot be read');
  if (source.entries > 0) {
    return check('window', 'ok', `${plural(source.entries, one, many)} in ${windowText(source)}`);
  }
  return check('window', 'warn', `no ${many} in ${windowText(source)}`, EMPTY_WINDOW_ADVICE[source.kind]);
}

function prefixCheck(source: SourceReport): Check {
  if (!source.readable) return check('prefix', 'skip', 'not checked: the source cannot be read');
  const others = source.otherPrefixes;
  if (source.prefixed > 0) {
    const also = others.length > 0 ? `; other LOG prefixes: ${prefixList(others)}` : '';
    return check(
      'prefix',
      'ok',
      `${plural(source.prefixed, 'line')} with the prefix ${source.prefix} in ${windowText(source)}${also}`,
    );
  }
  if (others.length === 0) {
    return check(
      'prefix',
      'ok',
      `no LOG lines in ${windowText(source)}: nothing was dropped, or no LOG rule logs the drops`,
    );
  }
  const named = others.find(({ prefix }) => prefix !== '');
  const advice =
    named === undefined
      ? 'give the LOG rule a prefix (iptables --log-prefix, Calico logs "calico-packet") and set IPTABLES_LOG_PREFIX to it'
      : `set IPTABLES_LOG_PREFIX=${named.prefix}`;
  return check(
    'prefix',
    'fail',
    `no line with the prefix ${source.prefix} (IPTABLES_LOG_PREFIX), but other LOG prefixes: ${prefixList(others)}`,
    advice,
  );
}

function parseCheck(source: SourceReport): Check {
  if (!source.readable) return check('parse', 'skip', 'not checked: the source cannot be read');
  if (source.prefixed === 0) return check('parse', 'skip', 'not checked: no line with the prefix');
  if (source.invalid.length === 0) {
    return check('parse', 'ok', `${plural(source.drops, 'packet drop')} parsed`);
  }
  const failed = source.prefixed - source.drops;
  const details = source.invalid.map(({ reason, count, example }) => `${reason} (${count}), e.g. ${example}`);
  const advice = source.invalid.some(({ reason }) => reason === 'bad_timestamp')
    ? "set PACKET_DROP_LOG_TIME_LAYOUT to the Go layout of the file's timestamps"
    : 'run `parse` on the same log to see every refused line: lines that merely mention the prefix are no LOG output';
  return check(
    'parse',
    'warn',
    `${failed} of ${plural(source.prefixed, 'line')} with the prefix could not be parsed (${plural(source.drops, 'drop')} parsed)`,
    advice,
    details,
  );
}

function apiCheck(api: ApiReport): Check {
  const at = api.server === null ? '' : ` at ${api.server}`;
  switch (api.failure) {
    case 'not_configured':
      return check(
        'api',
        'fail',
        api.error ?? 'no API server configured',
        api.credentials === 'kubeconfig'
          ? "point KUBECONFIG at a readable kubeconfig with the agent's credentials"
          : "run doctor in the agent's pod (kubectl exec -n kube-system ds/kube-iptables-tailer -- node /app/dist/cli.js doctor) or set KUBECONFIG",
      );
    case 'unauthorized':
      return check(
        'api',
        'fail',
        `the API server${at} refused the credentials (${api.credentials}): ${api.error}`,
        "check the ServiceAccount token mounted in the agent's pod, or the user of KUBECONFIG",
      );
    case 'unreachable':
      return check(
        'api',
        'fail',
        `cannot reach the API server${at}: ${api.error}`,
        "check KUBE_API_SERVER or KUBECONFIG and that this node's network reaches the API server",
      );
    case null: {
      const version = api.version === null ? '' : ` (Kubernetes ${api.version})`;
      return check('api', 'ok', `reachable${at}${version} with the ${api.credentials} credentials`);
    }
  }
}

function permissionName({ resource, verb }: { resource: string; verb: string }): string {
  return `${resource} ${verb}`;
}

function permissionsCheck(api: ApiReport): Check {
  if (!api.reachable) return check('permissions', 'skip', 'not checked: the API server cannot be used');
  const missing = api.permissions.filter(({ allowed }) => allowed === false).map(permissionName);
  const unknown = api.permissions.filter(({ allowed }) => allowed === null);
  if (missing.length > 0) {
    return check(
      'permissions',
      'fail',
      `missing: ${missing.join(', ')}`,
      `grant ${missing.join(', ')} to the agent's ServiceAccount: see ${RBAC}`,
    );
  }
  if (unknown.length > 0) {
    return check(
      'permissions',
      'warn',
      `could not check ${unknown.map(permissionName).join(', ')}`,
      `run doctor again; the agent needs every permission of ${RBAC}`,
      unknown.map((permission) => `${permissionName(permission)}: ${permission.error}`),
    );
  }
  return check('permissions', 'ok', `allowed: ${api.permissions.map(permissionName).join(', ')}`);
}

/** `POD_WATCH_SCOPE=node, NODE_NAME=node-a`, the setting every pod figure depends on. */
function scopeText(watch: WatchReport): string {
  return watch.scope === 'node'
    ? `POD_WATCH_SCOPE=node, NODE_NAME=${watch.nodeName}`
    : 'POD_WATCH_SCOPE=cluster';
}

/** The pods the watch holds: in node mode (`local` set), those that get Events first, hostNetwork ones beside. */
function podCount(running: number, local: number | null): string {
  if (local === null) return `${plural(running, 'Running pod')} would be indexed`;
  const hostNetwork = running - local;
  const beside = hostNetwork > 0 ? ` (and ${plural(hostNetwork, 'hostNetwork pod')})` : '';
  return `${plural(local, 'Running pod')} on this node would be indexed${beside}`;
}

function podsCheck(pods: PodsReport | null, watch: WatchReport): Check {
  const scope = scopeText(watch);
  if (pods === null) return check('pods', 'skip', `not checked (${scope}): the API server cannot be used`);
  if (pods.running === null) {
    const advice =
      pods.errorStatus === 403
        ? `grant pods list: see ${RBAC}`
        : 'check the API server: the agent indexes pods with the same list before it reads the log';
    return check('pods', 'fail', `${scope}: cannot list Running pods: ${pods.error}`, advice);
  }
  const nodes = pods.nodes === null ? `nodes not listed (${pods.nodesError})` : plural(pods.nodes, 'node');
  const others = watch.scope === 'node' ? '; pods of other nodes are looked up by address' : '';
  return check('pods', 'ok', `${scope}: ${podCount(pods.running, pods.local)}, ${nodes}${others}`);
}

/** POD_WATCH_SCOPE=node: whether the address's pod is this node's, or the agent would have to look it up. */
function lookupNote(address: ResolvedAddress, scope: WatchReport['scope']): string {
  if (scope === 'cluster') return '';
  if (address.via === 'watch') return address.pod === null ? '' : ' (on this node)';
  if (address.lookupError !== null) return ` (lookup by address failed: ${address.lookupError})`;
  return address.pod === null
    ? ' (looked up by address: no Running pod has it)'
    : ' (another node: looked up by address)';
}

/** `10.4.0.4  12 drops  pod default/netperf-client`, columns aligned by the caller. */
function addressLine(address: ResolvedAddress, width: number, scope: WatchReport['scope']): string {
  const target =
    address.pod !== null
      ? `pod ${address.pod}${address.hostNetwork ? ' (hostNetwork: named by its node, gets no event)' : ''}`
      : address.node !== null
        ? `node ${address.node}`
        : 'unresolved';
  const drops = plural(address.count, 'drop').padStart(10);
  return `${address.ip.padEnd(width)}  ${drops}  ${target}${lookupNote(address, scope)}`;
}

/** How many of the addresses the agent would have to look up, in node mode. */
function lookedUpText(addresses: readonly ResolvedAddress[]): string {
  const lookedUp = addresses.filter(({ via }) => via === 'lookup').length;
  return lookedUp === 0 ? '' : `; ${lookedUp} of them looked up by address (not on this node)`;
}

function addressesCheck(pods: PodsReport | null, watch: WatchReport): Check {
  if (pods === null || pods.running === null) {
    return check('addresses', 'skip', 'not checked: the pod index could not be listed');
  }
  if (pods.addresses.length === 0)
    return check('addresses', 'skip', 'not checked: no packet drop in the window');
  const width = Math.max(...pods.addresses.map(({ ip }) => ip.length));
  const details = pods.addresses.map((address) => addressLine(address, width, watch.scope));
  const unresolved = pods.addresses.filter(({ pod, node }) => pod === null && node === null);
  const count = pods.addresses.length;
  const of = count === 1 ? 'the most frequent drop address' : `the ${count} most frequent drop addresses`;
  const lookedUp = lookedUpText(pods.addresses);
  if (unresolved.length === 0) {
    return check('addresses', 'ok', `all of ${of} resolve to a pod or node${lookedUp}`, null, details);
  }
  return check(
    'addresses',
    'warn',
    `${unresolved.length} of ${of} match no Running pod or node${lookedUp}`,
    'check these addresses: only Running pods get events, so a pod that is gone or not Running, a Service IP or a host outside the cluster gets none (expected for outside hosts)',
    details,
  );
}

/** The answered outcomes first (the hit rate's), then the asks still waiting. */
const ANSWERED: readonly LookupOutcome[] = ['hit', 'miss', 'found', 'not_found'];
const WAITING: readonly LookupOutcome[] = ['error', 'rate_limited', 'coalesced'];

function outcomeList(outcomes: Record<LookupOutcome, number>, shown: readonly LookupOutcome[]): string {
  return shown.map((outcome) => `${outcome} ${outcomes[outcome]}`).join(', ');
}

/** `40.0%`; one decimal, so that a rate near 0 or 100 is not rounded to it. */
function percent(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

function lookupsCheck(lookups: LookupsReport, watch: WatchReport): Check {
  if (watch.scope === 'cluster') {
    return check('lookups', 'ok', 'not used: POD_WATCH_SCOPE=cluster watches every pod');
  }
  const { outcomes } = lookups;
  if (outcomes === null) return check('lookups', 'skip', `not checked: ${lookups.error ?? 'no figures'}`);
  const cached =
    lookups.cacheEntries === null ? '' : `; ${plural(lookups.cacheEntries, 'address', 'addresses')} cached`;
  const details = [
    `answered: ${outcomeList(outcomes, ANSWERED)}; not yet answered: ${outcomeList(outcomes, WAITING)}${cached}`,
    `read from the running agent at ${lookups.url}, counted since it started`,
  ];
  if (lookups.hitRate === null) {
    return check(
      'lookups',
      'ok',
      "no lookup answered yet: no drop named an address outside this node's pods and the nodes",
      null,
      details,
    );
  }
  const answered = ANSWERED.reduce((sum, outcome) => sum + outcomes[outcome], 0);
  return check(
    'lookups',
    'ok',
    `cache hit rate ${percent(lookups.hitRate)} (${outcomes.hit + outcomes.miss} of ${plural(answered, 'answered lookup')} from the cache)`,
    null,
    details,
  );
}

/** The placeholder setting that names policies, for a prefix without placeholders. */
function suggestedTemplate(prefix: string): string {
  return `${prefix} %k %p`;
}

/** The verdict on Felix's prefix against IPTABLES_LOG_PREFIX (`configured`). */
function felixCheck(felix: FelixReport | null, configured: string): Check {
  const skip = (summary: string): Check => ({
    id: 'felix',
    status: 'skip',
    summary,
    advice: null,
    details: [],
  });
  if (felix === null) return skip('not checked: the API could not be used');
  if (felix.reason === 'not_found')
    return skip('not checked: no Calico FelixConfiguration default in this cluster');
  if (felix.reason === 'forbidden') {
    return skip(
      'not checked: no permission to read FelixConfiguration default (optional; grant get on felixconfigurations to check the prefix)',
    );
  }
  if (felix.logPrefix === null)
    return skip(`not checked: ${felix.error ?? 'FelixConfiguration default unreadable'}`);
  const felixPrefix = normalizePrefix(felix.logPrefix);
  const ours = normalizePrefix(configured);
  if (felixPrefix !== ours) {
    return {
      id: 'felix',
      status: 'warn',
      summary: `Felix logs with the prefix "${felixPrefix}" (FelixConfiguration default, ${felix.api}), but IPTABLES_LOG_PREFIX is "${ours}"`,
      advice: `set IPTABLES_LOG_PREFIX="${felixPrefix}", so the agent sees Calico's drops${
        parseTemplate(felixPrefix) === null ? '' : ' and the policy that logged each'
      }`,
      details: [],
    };
  }
  if (parseTemplate(ours) !== null) {
    return {
      id: 'felix',
      status: 'ok',
      summary: `Felix logs with IPTABLES_LOG_PREFIX's template "${ours}": Events name the policy`,
      advice: null,
      details: [],
    };
  }
  return {
    id: 'felix',
    status: 'ok',
    summary: `Felix logs with IPTABLES_LOG_PREFIX's prefix "${ours}"`,
    advice: null,
    details: [
      `to name the policy in Events (Calico v3.30.6, v3.31.4, v3.32.0 or later): set Felix's logPrefix and IPTABLES_LOG_PREFIX to "${suggestedTemplate(ours)}"`,
    ],
  };
}

/** Every check, in the order they are printed. */
export function checksOf({ source, api, pods, felix, watch, lookups }: DoctorInputs): Check[] {
  return [
    sourceCheck(source),
    windowCheck(source),
    prefixCheck(source),
    parseCheck(source),
    apiCheck(api),
    permissionsCheck(api),
    podsCheck(pods, watch),
    addressesCheck(pods, watch),
    lookupsCheck(lookups, watch),
    felixCheck(felix, source.prefix),
  ];
}

export function buildReport(inputs: DoctorInputs): DoctorReport {
  const checks = checksOf(inputs);
  const exitCode = checks.some(({ status }) => status === 'fail') ? 1 : 0;
  return { exitCode, ...inputs, checks };
}

export function renderJson(report: DoctorReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

const MARKS: Record<Status, string> = { ok: '[ok]  ', warn: '[warn]', fail: '[FAIL]', skip: '[skip]' };

export function renderText(report: DoctorReport): string {
  const { source } = report;
  const variable = { journal: 'JOURNAL_DIRECTORY', file: 'IPTABLES_LOG_PATH', kmsg: 'KMSG_PATH' }[
    source.kind
  ];
  const where = `${variable}=${source.path}`;
  const lines = [
    `kube-iptables-tailer doctor: ${where}, IPTABLES_LOG_PREFIX=${source.prefix}, ${windowText(source)}`,
  ];
  const idWidth = Math.max(...report.checks.map(({ id }) => id.length));
  for (const { id, status, summary, advice, details } of report.checks) {
    lines.push(`${MARKS[status]} ${id.padEnd(idWidth)}  ${summary}`);
    const indent = ' '.repeat(MARKS.ok.length + idWidth + 3);
    for (const detail of details) lines.push(`${indent}${detail}`);
    if (advice !== null) lines.push(`${indent}-> ${advice}`);
  }
  const failures = report.checks.filter(({ status }) => status === 'fail').length;
  const warnings = report.checks.filter(({ status }) => status === 'warn').length;
  lines.push(
    failures > 0
      ? `${plural(failures, 'problem')} keep${failures === 1 ? 's' : ''} events from being posted; ${plural(warnings, 'warning')}`
      : `nothing keeps events from being posted; ${plural(warnings, 'warning')}`,
  );
  return `${lines.join('\n')}\n`;
}
