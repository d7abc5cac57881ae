// Configuration as the agent and the commands read it: every problem at once, plain decimal numbers, only
// the variables a command uses, and credentials the Kubernetes client would accept (checked before start).

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { type Config, ConfigError, loadConfig, PARSE_VARIABLES, REPLAY_VARIABLES } from '../agent/config.ts';
import { loadKubeConfig } from '../agent/kube/client.ts';
import { caseDirs } from './support/case-dirs.ts';

const SOURCE = { JOURNAL_DIRECTORY: '/var/log/journal' };

/** The problems loadConfig reports, or [] when it accepts the environment. */
function problemsOf(load: () => unknown): readonly string[] {
  try {
    load();
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

const problems = (env: Record<string, string>, options = {}) => problemsOf(() => loadConfig(env, options));

describe('numbers', () => {
  it.each(['0x10', '1e3', '0b11', '0o17', '+80', '-80', '80.0', '0.5', '8 0', 'Infinity'])(
    'rejects METRICS_SERVER_PORT=%j as not a plain decimal integer',
    (raw) => {
      expect(problems({ ...SOURCE, METRICS_SERVER_PORT: raw })).toEqual([
        `METRICS_SERVER_PORT=${JSON.stringify(raw)}: expected a decimal integer from 0 to 65535`,
      ]);
    },
  );

  it('accepts plain decimal integers in range, blanks around them allowed', () => {
    expect(loadConfig({ ...SOURCE, METRICS_SERVER_PORT: '8080' }).metricsPort).toBe(8080);
    expect(loadConfig({ ...SOURCE, METRICS_SERVER_PORT: ' 0 ' }).metricsPort).toBe(0);
    expect(loadConfig({ ...SOURCE, PACKET_DROP_EXPIRATION_MINUTES: '15' }).expirationMs).toBe(15 * 60_000);
  });

  it('rejects integers out of range, at both ends', () => {
    expect(problems({ ...SOURCE, METRICS_SERVER_PORT: '65536' })).toHaveLength(1);
    expect(problems({ ...SOURCE, PACKET_DROP_EXPIRATION_MINUTES: '0' })).toEqual([
      'PACKET_DROP_EXPIRATION_MINUTES="0": expected a decimal integer from 1 to 10080',
    ]);
    expect(problems({ ...SOURCE, EVENT_RATE_LIMIT_PER_SECOND: '99999999999999999999' })).toHaveLength(1);
  });
});

describe('KUBE_EVENT_DISPLAY_REASON', () => {
  it('is rejected empty or blank', () => {
    for (const reason of ['', ' ', '\t']) {
      expect(problems({ ...SOURCE, KUBE_EVENT_DISPLAY_REASON: reason })).toEqual([
        `KUBE_EVENT_DISPLAY_REASON=${JSON.stringify(reason)}: expected a word such as PacketDrop, at most 128 characters`,
      ]);
    }
  });

  it('defaults to PacketDrop when unset, and is taken as given otherwise', () => {
    expect(loadConfig(SOURCE).eventReason).toBe('PacketDrop');
    expect(loadConfig({ ...SOURCE, KUBE_EVENT_DISPLAY_REASON: 'Blocked' }).eventReason).toBe('Blocked');
  });

  it('is rejected longer than the 128 characters the API takes', () => {
    expect(problems({ ...SOURCE, KUBE_EVENT_DISPLAY_REASON: 'R'.repeat(128) })).toEqual([]);
    expect(problems({ ...SOURCE, KUBE_EVENT_DISPLAY_REASON: 'R'.repeat(129) })).toHaveLength(1);
  });
});

describe('KUBE_EVENT_SOURCE_COMPONENT_NAME', () => {
  it.each(['kube-iptables-tailer', 'tailer_2', 'example.com/tailer', 'A.b-c', 'x'.repeat(63)])(
    'accepts the qualified name %j',
    (name) => {
      expect(loadConfig({ ...SOURCE, KUBE_EVENT_SOURCE_COMPONENT_NAME: name }).eventSourceComponent).toBe(
        name,
      );
    },
  );

  it.each([
    'kube iptables tailer',
    '-tailer',
    'tailer.',
    'x'.repeat(64),
    'Example.com/tailer',
    'a/b/c',
    '/tailer',
  ])('rejects %j, which the API refuses as reportingComponent', (name) => {
    expect(problems({ ...SOURCE, KUBE_EVENT_SOURCE_COMPONENT_NAME: name })).toEqual([
      `KUBE_EVENT_SOURCE_COMPONENT_NAME=${JSON.stringify(name)}: expected a Kubernetes qualified name (letters, digits, -, _ and ., up to 63, optionally after a DNS prefix and /) such as kube-iptables-tailer`,
    ]);
  });
});

describe('KUBE_API_SERVER', () => {
  it.each(['10.96.0.1:443', 'ftp://10.96.0.1', 'https://', 'https://host/?x=1', 'not a url'])(
    'rejects %j, saying an https:// URL is expected',
    (server) => {
      expect(problems({ ...SOURCE, KUBE_API_SERVER: server })).toEqual([
        `KUBE_API_SERVER=${JSON.stringify(server)}: expected the API server as an https:// URL, e.g. https://10.96.0.1:443`,
      ]);
    },
  );

  it('accepts https and http URLs here; whether http is usable depends on the credentials (below)', () => {
    expect(loadConfig({ ...SOURCE, KUBE_API_SERVER: 'https://10.96.0.1:443' }).kubeApiServer).toBe(
      'https://10.96.0.1:443',
    );
    expect(problems({ ...SOURCE, KUBE_API_SERVER: 'http://127.0.0.1:8080' })).toEqual([]);
  });
});

describe('every problem at once', () => {
  it('names each invalid variable, and the missing source, in one error', () => {
    const found = problems(
      {
        METRICS_SERVER_PORT: '0x10',
        POD_IDENTIFIER: 'bogus',
        LOG_LEVEL: 'loud',
        KUBE_EVENT_DISPLAY_REASON: '',
        REVERSE_DNS: 'yes',
      },
      { needsSource: true },
    );
    expect(found).toEqual([
      'POD_IDENTIFIER="bogus": expected one of namespace, name, label, name_with_namespace',
      'KUBE_EVENT_DISPLAY_REASON="": expected a word such as PacketDrop, at most 128 characters',
      'none of JOURNAL_DIRECTORY, IPTABLES_LOG_PATH and KMSG_PATH is set: set exactly one (JOURNAL_DIRECTORY=/var/log/journal for the systemd journal, IPTABLES_LOG_PATH=/var/log/kern.log for a syslog file, KMSG_PATH=/dev/kmsg for the kernel ring buffer)',
      'METRICS_SERVER_PORT="0x10": expected a decimal integer from 0 to 65535',
      'LOG_LEVEL="loud": expected one of trace, debug, info, warn, error, fatal, silent',
      'REVERSE_DNS="yes": expected one of true, false',
    ]);
  });

  it('says once that more than one source is set, naming them', () => {
    expect(problems({ ...SOURCE, IPTABLES_LOG_PATH: '/var/log/kern.log' }, { needsSource: true })).toEqual([
      'JOURNAL_DIRECTORY and IPTABLES_LOG_PATH are both set: set exactly one (JOURNAL_DIRECTORY=/var/log/journal for the systemd journal, IPTABLES_LOG_PATH=/var/log/kern.log for a syslog file, KMSG_PATH=/dev/kmsg for the kernel ring buffer)',
    ]);
    expect(
      problems({ IPTABLES_LOG_PATH: '/var/log/kern.log', KMSG_PATH: '/dev/kmsg' }, { needsSource: true }),
    ).toEqual([
      'IPTABLES_LOG_PATH and KMSG_PATH are both set: set exactly one (JOURNAL_DIRECTORY=/var/log/journal for the systemd journal, IPTABLES_LOG_PATH=/var/log/kern.log for a syslog file, KMSG_PATH=/dev/kmsg for the kernel ring buffer)',
    ]);
    expect(
      problems(
        { ...SOURCE, IPTABLES_LOG_PATH: '/var/log/kern.log', KMSG_PATH: '/dev/kmsg' },
        { needsSource: true },
      ),
    ).toEqual([
      'JOURNAL_DIRECTORY, IPTABLES_LOG_PATH and KMSG_PATH are all set: set exactly one (JOURNAL_DIRECTORY=/var/log/journal for the systemd journal, IPTABLES_LOG_PATH=/var/log/kern.log for a syslog file, KMSG_PATH=/dev/kmsg for the kernel ring buffer)',
    ]);
  });

  it('takes the one source that is set', () => {
    const file = loadConfig({ IPTABLES_LOG_PATH: '/var/log/kern.log' }, { needsSource: true });
    expect(file.source).toEqual({ kind: 'file', path: '/var/log/kern.log' });
    expect(loadConfig({ KMSG_PATH: '/dev/kmsg' }, { needsSource: true }).source).toEqual({
      kind: 'kmsg',
      path: '/dev/kmsg',
    });
    expect(loadConfig(SOURCE, { needsSource: true }).source).toEqual({
      kind: 'journal',
      path: '/var/log/journal',
    });
  });
});

describe('only the variables a command uses', () => {
  const daemonSetOnly = {
    POD_IDENTIFIER: 'bogus',
    METRICS_SERVER_PORT: 'x',
    KUBE_API_SERVER: 'nowhere',
    LOG_LEVEL: 'loud',
    EVENT_BURST_PER_POD: '0',
    SHUTDOWN_GRACE_SECONDS: '-1',
  };

  it('parse ignores the DaemonSet settings and needs no source', () => {
    const config: Config = loadConfig(
      { ...daemonSetOnly, IPTABLES_LOG_PREFIX: 'my-drop' },
      { uses: PARSE_VARIABLES },
    );
    expect(config.logPrefix).toBe('my-drop');
  });

  it('parse still reports its own variables', () => {
    expect(
      problems({ ...daemonSetOnly, PACKET_DROP_LOG_TIME_LAYOUT: 'nonsense' }, { uses: PARSE_VARIABLES }),
    ).toEqual([
      'PACKET_DROP_LOG_TIME_LAYOUT="nonsense": expected a Go reference-time layout such as 2006-01-02T15:04:05.000000-07:00',
    ]);
  });

  it('replay reports the naming and Event variables, not the API, port or log ones', () => {
    expect(problems(daemonSetOnly, { uses: REPLAY_VARIABLES })).toEqual([
      'POD_IDENTIFIER="bogus": expected one of namespace, name, label, name_with_namespace',
    ]);
    expect(
      problems({ POD_IDENTIFIER: 'label', METRICS_SERVER_PORT: 'x' }, { uses: REPLAY_VARIABLES }),
    ).toEqual(['POD_IDENTIFIER=label needs POD_IDENTIFIER_LABEL (the label key whose value names the pod)']);
  });
});

describe('credentials', () => {
  const dirs = caseDirs('credentials');

  async function kubeconfig(
    cluster: Record<string, unknown>,
    user: Record<string, unknown> = { token: 't' },
  ) {
    const dir = await dirs.next();
    const path = join(dir, 'config');
    await writeFile(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    return path;
  }

  const load = (env: Record<string, string>, kubeApiServer: string | null = null) =>
    problemsOf(() => loadKubeConfig({ kubeApiServer }, env));

  it('names a KUBECONFIG file that is missing, a directory, not YAML, or not a kubeconfig', async () => {
    const dir = await dirs.next();
    await writeFile(join(dir, 'text'), 'hello\n');
    await writeFile(join(dir, 'broken'), 'clusters: [\n');
    await mkdir(join(dir, 'sub'));
    expect(load({ KUBECONFIG: join(dir, 'missing') })).toEqual([
      `KUBECONFIG=${join(dir, 'missing')}: no such file; expected a kubeconfig file`,
    ]);
    expect(load({ KUBECONFIG: join(dir, 'sub') })).toEqual([
      `KUBECONFIG=${join(dir, 'sub')}: a directory, not a file; expected a kubeconfig file`,
    ]);
    expect(load({ KUBECONFIG: join(dir, 'text') })).toEqual([
      `KUBECONFIG=${join(dir, 'text')}: not a kubeconfig: expected a current-context naming a cluster and a user`,
    ]);
    const [broken] = load({ KUBECONFIG: join(dir, 'broken') });
    expect(broken).toMatch(
      new RegExp(`^KUBECONFIG=${join(dir, 'broken')}: not a kubeconfig: .+; expected a kubeconfig file$`),
    );
    expect(broken).not.toContain('\n');
  });

  it('names a certificate file the kubeconfig points to that cannot be read', async () => {
    const path = await kubeconfig({
      server: 'https://127.0.0.1:6443',
      'certificate-authority': '/nonexistent/ca.crt',
    });
    expect(load({ KUBECONFIG: path })).toEqual([
      `KUBECONFIG=${path}: certificate-authority file /nonexistent/ca.crt: no such file`,
    ]);
  });

  it('refuses plain http where the client would (without insecure-skip-tls-verify), and accepts it where it would not', async () => {
    const strict = await kubeconfig({ server: 'https://127.0.0.1:6443' });
    expect(load({ KUBECONFIG: strict }, 'http://127.0.0.1:8080')).toEqual([
      'KUBE_API_SERVER=http://127.0.0.1:8080: server http://127.0.0.1:8080 is plain http, which the Kubernetes client accepts only with insecure-skip-tls-verify: true; use https://',
    ]);
    const plain = await kubeconfig({ server: 'http://127.0.0.1:8080' });
    expect(load({ KUBECONFIG: plain })).toEqual([
      `KUBECONFIG=${plain}: server http://127.0.0.1:8080 is plain http, which the Kubernetes client accepts only with insecure-skip-tls-verify: true; use https://`,
    ]);
    const insecure = await kubeconfig({ server: 'https://127.0.0.1:6443', 'insecure-skip-tls-verify': true });
    const kc = loadKubeConfig({ kubeApiServer: 'http://127.0.0.1:8080' }, { KUBECONFIG: insecure });
    expect(kc.getCurrentCluster()?.server).toBe('http://127.0.0.1:8080');
    // What the check stands for: the client itself accepts this configuration, and refuses the other.
    await expect(kc.applyToFetchOptions({})).resolves.toBeDefined();
    const strictKc = loadKubeConfig({ kubeApiServer: null }, { KUBECONFIG: strict });
    const refused = new KubeConfig();
    refused.loadFromOptions({
      clusters: strictKc.clusters.map((cluster) => ({ ...cluster, server: 'http://127.0.0.1:8080' })),
      users: strictKc.users,
      contexts: strictKc.contexts,
      currentContext: strictKc.currentContext,
    });
    await expect(refused.applyToFetchOptions({})).rejects.toThrow(/HTTP protocol is not allowed/);
  });

  it('outside a pod without KUBECONFIG, says so instead of building a URL of undefined', () => {
    expect(load({})).toEqual([
      'KUBECONFIG is not set and this is not a pod (KUBERNETES_SERVICE_HOST is unset): set KUBECONFIG to a kubeconfig file, or run the agent in a pod with a ServiceAccount',
    ]);
  });

  it('in a pod without a ServiceAccount token, names the token file', () => {
    expect(load({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' })).toEqual([
      'KUBECONFIG is not set and the in-cluster ServiceAccount token /var/run/secrets/kubernetes.io/serviceaccount/token: no such file; mount the ServiceAccount token (automountServiceAccountToken) or set KUBECONFIG',
    ]);
  });
});

describe('IPTABLES_LOG_PREFIX with placeholders', () => {
  it("takes Felix's logPrefix template", () => {
    expect(loadConfig({ ...SOURCE, IPTABLES_LOG_PREFIX: 'calico-packet %k %p' }).logPrefix).toBe(
      'calico-packet %k %p',
    );
  });

  it('refuses a template no line could be read with, saying why', () => {
    expect(problems({ ...SOURCE, IPTABLES_LOG_PREFIX: '%k %p' })).toEqual([
      'IPTABLES_LOG_PREFIX="%k %p": expected the --log-prefix text, or Felix\'s logPrefix template such as "calico-packet %k %p" (a template must start with text before its first placeholder)',
    ]);
    expect(problems({ ...SOURCE, IPTABLES_LOG_PREFIX: 'calico-packet %k%p' })).toHaveLength(1);
  });
});

describe('POD_WATCH_SCOPE', () => {
  const run = { needsSource: true, watchesPods: true };

  it('defaults to node, which needs NODE_NAME in the agent: the error names both and what to set', () => {
    expect(loadConfig({ ...SOURCE, NODE_NAME: 'node-a' }, run).podWatchScope).toBe('node');
    expect(problems(SOURCE, run)).toEqual([
      "NODE_NAME is not set: POD_WATCH_SCOPE=node (the default) watches this node's pods; set NODE_NAME to the node's name (fieldRef spec.nodeName), or POD_WATCH_SCOPE=cluster",
    ]);
  });

  it('cluster needs no NODE_NAME; commands that watch no pods (doctor, replay) never ask for it', () => {
    expect(loadConfig({ ...SOURCE, POD_WATCH_SCOPE: 'Cluster' }, run).podWatchScope).toBe('cluster');
    expect(problems(SOURCE, { needsSource: true })).toEqual([]);
    expect(problems({}, { uses: REPLAY_VARIABLES })).toEqual([]);
  });

  it('names the accepted values', () => {
    expect(problems({ ...SOURCE, NODE_NAME: 'node-a', POD_WATCH_SCOPE: 'all' }, run)).toEqual([
      'POD_WATCH_SCOPE="all": expected one of node, cluster',
    ]);
  });
});
