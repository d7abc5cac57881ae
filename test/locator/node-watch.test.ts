import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import type { ListWatch, ListWatchSink } from '../../agent/kube/list-watch.ts';
import { apiNodeAddresses, createNodeWatch } from '../../agent/locator/node-watch.ts';
import type { NodeAddresses } from '../../agent/locator/pod-index.ts';
import {
  type Cluster,
  connect,
  createNode,
  deleteNode,
  setNodeAddresses,
  uniqueName,
} from '../support/cluster.ts';

class NodeIndex implements ListWatchSink<NodeAddresses> {
  readonly nodes = new Map<string, string[]>();
  replace(nodes: NodeAddresses[]): void {
    this.nodes.clear();
    for (const node of nodes) this.upsert(node);
  }
  upsert(node: NodeAddresses): void {
    this.nodes.set(node.name, node.addresses);
  }
  remove(node: NodeAddresses): void {
    this.nodes.delete(node.name);
  }
}

describe('apiNodeAddresses', () => {
  it('keeps InternalIP and ExternalIP addresses in canonical form, once each', () => {
    const node = {
      metadata: { name: 'node-a' },
      status: {
        addresses: [
          { type: 'Hostname', address: 'node-a' },
          { type: 'InternalIP', address: '10.128.0.2' },
          { type: 'InternalIP', address: 'fd00:0010:0128:0000:0000:0000:0000:0002' },
          { type: 'ExternalIP', address: '203.0.113.9' },
          { type: 'InternalDNS', address: 'node-a.internal' },
          { type: 'ExternalIP', address: '10.128.0.2' },
          { type: 'ExternalIP', address: 'not-an-ip' },
        ],
      },
    };
    expect(apiNodeAddresses(node)).toEqual({
      name: 'node-a',
      addresses: ['10.128.0.2', 'fd00:10:128::2', '203.0.113.9'],
    });
    expect(apiNodeAddresses({ metadata: { name: 'bare' } })).toEqual({ name: 'bare', addresses: [] });
    expect(apiNodeAddresses({ metadata: {} })).toBeNull();
    expect(apiNodeAddresses('node')).toBeNull();
  });
});

describe('node watch against a real API server', () => {
  let c: Cluster;
  let index: NodeIndex;
  let watch: ListWatch<NodeAddresses>;
  const first = uniqueName('node');
  const second = uniqueName('node');

  beforeAll(async () => {
    c = connect(inject('kubeconfig'));
    await createNode(c, first, [
      { type: 'InternalIP', address: '10.128.0.2' },
      { type: 'InternalIP', address: 'fd00:10:128::2' },
      { type: 'Hostname', address: first },
    ]);
    index = new NodeIndex();
    watch = createNodeWatch({ kubeConfig: c.kc, sink: index, logger: pino({ level: 'silent' }) });
    watch.start();
    await watch.waitForSync(AbortSignal.timeout(10_000));
  });

  afterAll(() => watch?.stop());

  it('maps the addresses of existing nodes at sync', () => {
    expect(index.nodes.get(first)).toEqual(['10.128.0.2', 'fd00:10:128::2']);
  });

  it('follows nodes as they are added, readdressed and deleted', async () => {
    await createNode(c, second, [{ type: 'ExternalIP', address: '203.0.113.7' }]);
    await vi.waitFor(() => expect(index.nodes.get(second)).toEqual(['203.0.113.7']), { timeout: 10_000 });

    await setNodeAddresses(c, second, [
      { type: 'InternalIP', address: '10.128.0.3' },
      { type: 'ExternalIP', address: '203.0.113.8' },
    ]);
    await vi.waitFor(() => expect(index.nodes.get(second)).toEqual(['10.128.0.3', '203.0.113.8']), {
      timeout: 10_000,
    });

    await deleteNode(c, second);
    await vi.waitFor(() => expect(index.nodes.has(second)).toBe(false), { timeout: 10_000 });
    expect(index.nodes.has(first)).toBe(true);
  });
});
