import { describe, expect, it } from 'vitest';
import { Metrics } from '../agent/metrics.ts';

/** The packet_drops_count series in the registry's exposition text, as `src>dst` = count. */
async function dropSeries(metrics: Metrics): Promise<Record<string, number>> {
  const text = await metrics.registry.getSingleMetricAsString('packet_drops_count');
  const series: Record<string, number> = {};
  for (const match of text.matchAll(/^packet_drops_count\{src="([^"]*)",dst="([^"]*)"\} (\d+)$/gm)) {
    series[`${match[1]}>${match[2]}`] = Number(match[3]);
  }
  return series;
}

async function evicted(metrics: Metrics): Promise<number> {
  return (await metrics.dropSeriesEvicted.get()).values[0]?.value ?? 0;
}

describe('packet_drops_count', () => {
  it('counts each drop under its pair of peer names', async () => {
    const metrics = new Metrics();
    metrics.countDrop('default', 'netperf');
    metrics.countDrop('default', 'netperf');
    metrics.countDrop('netperf', 'default');
    expect(await dropSeries(metrics)).toEqual({ 'default>netperf': 2, 'netperf>default': 1 });
    expect(await evicted(metrics)).toBe(0);
  });

  it('keeps at most the limit of series, removing the least recently counted', async () => {
    const metrics = new Metrics({ dropSeriesLimit: 3 });
    metrics.countDrop('pod', '203.0.113.1');
    metrics.countDrop('pod', '203.0.113.2');
    metrics.countDrop('pod', '203.0.113.3');
    // Counted again: now the most recent, so .2 is the oldest when a fourth pair comes.
    metrics.countDrop('pod', '203.0.113.1');
    metrics.countDrop('pod', '203.0.113.4');
    expect(await dropSeries(metrics)).toEqual({
      'pod>203.0.113.1': 2,
      'pod>203.0.113.3': 1,
      'pod>203.0.113.4': 1,
    });
    expect(await evicted(metrics)).toBe(1);
  });

  it('stays bounded under a stream of new peers, and counts a returning pair from zero', async () => {
    const metrics = new Metrics({ dropSeriesLimit: 100 });
    for (let i = 0; i < 1000; i++) metrics.countDrop('pod', `198.51.${i >> 8}.${i & 255}`);
    const series = await dropSeries(metrics);
    expect(Object.keys(series)).toHaveLength(100);
    expect(series['pod>198.51.3.231']).toBe(1);
    expect(series['pod>198.51.0.0']).toBeUndefined();
    expect(await evicted(metrics)).toBe(900);
    metrics.countDrop('pod', '198.51.0.0');
    expect((await dropSeries(metrics))['pod>198.51.0.0']).toBe(1);
  });

  it('tells pairs apart whatever characters the names hold', async () => {
    const metrics = new Metrics({ dropSeriesLimit: 2 });
    metrics.countDrop('a,b', 'c');
    metrics.countDrop('a', 'b,c');
    metrics.countDrop('x', 'y');
    expect(await dropSeries(metrics)).toEqual({ 'a>b,c': 1, 'x>y': 1 });
    expect(await evicted(metrics)).toBe(1);
  });
});

describe('policy_drops_total', () => {
  const policy = {
    tier: null,
    kind: 'GlobalNetworkPolicy',
    namespace: null,
    name: 'default.netperf',
    cut: false,
  };

  async function policySeries(metrics: Metrics): Promise<string[]> {
    const text = await metrics.registry.getSingleMetricAsString('kube_iptables_tailer_policy_drops_total');
    return text.split('\n').filter((line) => !line.startsWith('#') && line !== '');
  }

  it('counts drops by kind, namespace and name, marking a cut name, with empty labels for what is unknown', async () => {
    const metrics = new Metrics();
    metrics.countPolicyDrop(policy);
    metrics.countPolicyDrop(policy);
    metrics.countPolicyDrop({ ...policy, kind: 'NetworkPolicy', namespace: 'web', name: 'deny', cut: false });
    metrics.countPolicyDrop({ ...policy, name: 'default.net', cut: true });
    metrics.countPolicyDrop({ ...policy, kind: null, name: null });
    expect(await policySeries(metrics)).toEqual([
      'kube_iptables_tailer_policy_drops_total{kind="GlobalNetworkPolicy",namespace="",name="default.netperf"} 2',
      'kube_iptables_tailer_policy_drops_total{kind="NetworkPolicy",namespace="web",name="deny"} 1',
      'kube_iptables_tailer_policy_drops_total{kind="GlobalNetworkPolicy",namespace="",name="default.net…"} 1',
      'kube_iptables_tailer_policy_drops_total{kind="",namespace="",name=""} 1',
    ]);
  });

  it('keeps at most the series limit, as packet_drops_count does, counting what it removed', async () => {
    const metrics = new Metrics({ dropSeriesLimit: 10 });
    for (let i = 0; i < 25; i++) metrics.countPolicyDrop({ ...policy, name: `p-${i}` });
    expect(await policySeries(metrics)).toHaveLength(10);
    expect((await metrics.policySeriesEvicted.get()).values[0]?.value).toBe(15);
    expect(await evicted(metrics)).toBe(0);
  });
});
