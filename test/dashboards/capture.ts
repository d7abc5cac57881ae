// Records what the README's dashboard picture is drawn from: the real agent against a test control plane
// (`npm run --silent testenv -- up`), a short drop storm appended to a real journal, and its /metrics
// scraped once a second. Writes one JSON line per scrape ({"t": ms, "text": scrape}) to the file named.
//
//   node test/dashboards/capture.ts <kubeconfig> <out.jsonl>
//   /tmp/venv/bin/python dashboards/render.py <out.jsonl> dashboards/kube-iptables-tailer.png

import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgent } from '../e2e/agent-process.ts';
import { connect, createNamespace, createPod, setPodRunning } from '../support/cluster.ts';
import { appendJournal, type JournalEntry, tempDir } from '../support/journal.ts';

const [kubeconfig, out] = process.argv.slice(2);
if (kubeconfig === undefined || out === undefined) {
  process.stderr.write('usage: node test/dashboards/capture.ts <kubeconfig> <out.jsonl>\n');
  process.exit(2);
}
const NODE = 'capture-node';
const SECONDS = 90;

const cluster = connect(kubeconfig);
const pods: { namespace: string; name: string; ip: string }[] = [];
for (const [n, app] of ['shop', 'payments', 'search'].entries()) {
  const namespace = await createNamespace(cluster, `${app}-${Date.now().toString(36)}`);
  for (let i = 0; i < 3; i++) {
    const pod = { namespace, name: `${app}-${i}`, ip: `10.88.${n}.${i + 10}` };
    await createPod(cluster, { namespace, name: pod.name, nodeName: NODE });
    await setPodRunning(cluster, namespace, pod.name, { podIPs: [pod.ip], hostIP: '10.128.0.20' });
    pods.push(pod);
  }
}
const journal = await tempDir('journal-');
const file = join(journal, 'system.journal');
await appendJournal(file, [{ message: 'Linux version 6.1.0 (boot)' }]);
const agent = await startAgent({
  KUBECONFIG: kubeconfig,
  JOURNAL_DIRECTORY: journal,
  CHECKPOINT_DIRECTORY: await tempDir('checkpoint-'),
  NODE_NAME: NODE,
  IPTABLES_LOG_PREFIX: 'calico-packet',
  POD_IDENTIFIER: 'name_with_namespace',
  POD_WATCH_SCOPE: 'cluster',
  REPEATED_EVENTS_INTERVAL_MINUTES: '0',
  LOG_LEVEL: 'warn',
});

/** A storm that rises and falls, mostly shop → payments, some traffic to the outside and to unknowns. */
function second(s: number): JournalEntry[] {
  const load = Math.round(400 * Math.sin((Math.PI * s) / SECONDS) ** 2);
  return Array.from({ length: load }, (_, k) => {
    const src = pods[k % 3] ?? pods[0];
    const dst = k % 4 === 0 ? { ip: `203.0.113.${k % 7}` } : pods[3 + (k % 5)];
    const port = [5432, 443, 8080][k % 3];
    return {
      hostname: NODE,
      message: `calico-packet: IN=cali0 OUT=eth0 SRC=${src?.ip} DST=${dst?.ip} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=${30000 + ((s * 7 + k) % 20000)} DPT=${port} WINDOW=42600 RES=0x00 SYN URGP=0`,
    };
  });
}

await writeFile(out, '');
for (let s = 0; s < SECONDS + 30; s++) {
  const started = Date.now();
  if (s < SECONDS) await appendJournal(file, second(s));
  await appendFile(out, `${JSON.stringify({ t: Date.now(), text: await agent.metrics() })}\n`);
  await sleep(Math.max(0, 1000 - (Date.now() - started)));
}
process.exit((await agent.stop()) ?? 1);
