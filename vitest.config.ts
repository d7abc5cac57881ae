import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Files that need the real etcd + kube-apiserver (they `inject('kubeconfig')`) or run the agent as a
// process against it. Everything else is the `unit` project, which never starts the control plane.
const integration = [
  'test/controlplane.test.ts',
  'test/e2e/**/*.test.ts',
  'test/kube/list-watch.test.ts',
  'test/locator/*watch*.test.ts',
  'test/events/writer.test.ts',
  'test/events/writer-api.test.ts',
  'test/manifests/**/*.test.ts',
  'test/tools/doctor/doctor-cli.test.ts',
  'test/dashboards/dashboard.test.ts',
  'test/charts/**/*.test.ts',
];

// 100,000 damaged inputs each: CPU-bound soaks of the parser and the export reader, run by `npm test`
// beside the unit tests so `npm run test:unit` stays quick.
const fuzz = ['test/fuzz/**/*.test.ts'];

// Every project spawns systemd-journal-remote, journalctl, … ; this set-up finds them or installs them.
const prerequisites = 'test/setup/prerequisites.ts';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The tests start `node agent/cli.ts` dozens of times. Node's compile cache keeps the type-stripped,
    // compiled modules on disk for each next process (and run) instead of compiling them anew: a CLI
    // process costs a third of the CPU, on a machine whose cores the test files already fill.
    env: { NODE_COMPILE_CACHE: fileURLToPath(new URL('.cache/node-compile-cache', import.meta.url)) },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          // Vitest's default (one worker per core, less one) leaves a core idle on a 2-core machine, and unit
          // files spend much of their time waiting on child processes (journalctl, the CLI): one worker more
          // than cores keeps every core busy. Threads start faster than forked processes.
          maxWorkers: availableParallelism() + 1,
          pool: 'threads',
          // Groups run one after another: the integration tests, several timing-sensitive, never share
          // the machine with the unit workers.
          sequence: { groupOrder: 0 },
          include: ['test/**/*.test.ts'],
          exclude: [...integration, ...fuzz],
          globalSetup: [prerequisites],
        },
      },
      {
        extends: true,
        test: { name: 'fuzz', include: fuzz, globalSetup: [prerequisites], sequence: { groupOrder: 1 } },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: integration,
          globalSetup: [prerequisites, 'test/setup/controlplane.ts'],
          hookTimeout: 600_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
