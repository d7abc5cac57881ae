// The dashboard cannot drift from the code: the real agent runs against the real API server, turns drops
// appended to a real journal into Events, and every metric any panel or variable of
// dashboards/kube-iptables-tailer.json queries must be in its /metrics scrape.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AgentProcess, metricSum, metricValue, startAgent, waitFor } from '../e2e/agent-process.ts';
import {
  type Cluster,
  connect,
  createNamespace,
  createPod,
  deletePod,
  setPodRunning,
  shippedAgentToken,
  tokenKubeconfig,
} from '../support/cluster.ts';
import { appendJournal, tempDir } from '../support/journal.ts';
import { type Dashboard, dashboardQueries, exportedNames } from './promql-names.ts';

const DASHBOARD = join(import.meta.dirname, '../../dashboards/kube-iptables-tailer.json');
const NODE = 'dashboard-node';
// Addresses no other test gives its pods: integration files share one API server.
const CLIENT = { name: 'dash-client', ip: '10.77.1.6' };
const SERVER = { name: 'dash-server', ip: '10.77.0.16' };

function drop(sport: number): string {
  return `calico-packet: IN=cali6e7bb88b982 OUT=eth0 SRC=${CLIENT.ip} DST=${SERVER.ip} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${sport} DPT=5432 WINDOW=42600 RES=0x00 SYN URGP=0`;
}

describe('the Grafana dashboard', () => {
  let cluster: Cluster;
  let namespace: string;
  let agent: AgentProcess | undefined;
  let scrape = '';

  beforeAll(async () => {
    cluster = connect(inject('kubeconfig'));
    namespace = await createNamespace(cluster);
    for (const pod of [CLIENT, SERVER]) {
      await createPod(cluster, { namespace, name: pod.name, nodeName: NODE });
      await setPodRunning(cluster, namespace, pod.name, { podIPs: [pod.ip], hostIP: '10.128.0.9' });
    }
    const journal = await tempDir('journal-');
    const file = join(journal, 'system.journal');
    await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
    agent = await startAgent({
      KUBECONFIG: await tokenKubeconfig(cluster, await shippedAgentToken(cluster)),
      JOURNAL_DIRECTORY: journal,
      CHECKPOINT_DIRECTORY: await tempDir('checkpoint-'),
      NODE_NAME: NODE,
      IPTABLES_LOG_PREFIX: 'calico-packet',
      POD_IDENTIFIER: 'name_with_namespace',
      POD_WATCH_SCOPE: 'cluster',
    });
    // One flow seen three times (the client's source port changes, the flow does not): one drop posted and
    // written to both pods, two suppressed as repeats.
    await appendJournal(
      file,
      [40000, 40001, 40001].map((sport) => ({ message: drop(sport), hostname: NODE })),
    );
    const running = agent;
    scrape = await waitFor(
      async () => {
        const text = await running.metrics();
        return metricValue(text, 'kube_iptables_tailer_events_created_total') >= 2 &&
          metricValue(text, 'kube_iptables_tailer_drops_suppressed_total') >= 2
          ? text
          : undefined;
      },
      20_000,
      'the drops written as Events',
    );
  });

  afterAll(async () => {
    expect(await agent?.stop()).toBe(0);
    for (const pod of [CLIENT, SERVER]) await deletePod(cluster, namespace, pod.name);
  });

  it('the scrape counted the drops under the names the drop panels group by', () => {
    expect(
      metricValue(
        scrape,
        'packet_drops_count',
        `src="${namespace}/${CLIENT.name}",dst="${namespace}/${SERVER.name}"`,
      ),
    ).toBe(1);
    expect(metricSum(scrape, 'kube_iptables_tailer_drop_sides_total')).toBe(2);
    expect(metricValue(scrape, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('queries only metrics the agent exports, in every panel and variable', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
    const queries = dashboardQueries(dashboard);
    // Every panel but the rows, and every query variable, has queries, and they were all read.
    const panels = dashboard.panels.filter((panel) => panel.type !== 'row').length;
    const variables = (dashboard.templating?.list ?? []).filter(
      (variable) => variable.type === 'query',
    ).length;
    expect(queries.size).toBe(panels + variables);
    const exported = exportedNames(scrape);
    const missing = Object.fromEntries(
      [...queries]
        .map(([where, names]) => [where, names.filter((name) => !exported.has(name))] as const)
        .filter(([, names]) => names.length > 0),
    );
    expect(missing).toEqual({});
  });
});
