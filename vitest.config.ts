import { defineConfig } from 'vitest/config';

// Files that need the real etcd + kube-apiserver (they `inject('kubeconfig')`) or run the agent as a
// process against it. Everything else is the `unit` project, which never starts the control plane.
const integration = [
  'test/controlplane.test.ts',
  'test/e2e/**/*.test.ts',
  'test/kube/**/*.test.ts',
  'test/locator/*watch*.test.ts',
  'test/events/writer.test.ts',
  'test/events/writer-api.test.ts',
  'test/manifests/**/*.test.ts',
  'test/tools/doctor/doctor-cli.test.ts',
];

// Both projects spawn systemd-journal-remote, journalctl, … ; this set-up finds them or installs them.
const prerequisites = 'test/setup/prerequisites.ts';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: integration,
          globalSetup: [prerequisites],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: integration,
          globalSetup: [prerequisites, 'test/setup/controlplane.ts'],
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
