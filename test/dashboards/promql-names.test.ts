import { describe, expect, it } from 'vitest';
import { dashboardQueries, exportedNames, metricNames, variableMetric } from './promql-names.ts';

describe('metricNames', () => {
  it('finds the metrics of an expression, not its functions, keywords, labels, strings or variables', () => {
    expect(
      metricNames(
        'topk(10, sum by (src, dst) (rate(packet_drops_count{job=~"$job", instance=~"$instance"}[$__rate_interval])))',
      ),
    ).toEqual(['packet_drops_count']);
    expect(
      metricNames(
        'sum by (ns) (label_replace(rate(a_total[5m]), "ns", "$1", "src", "([^/]+)(/.*)?")) / on (ns) group_left (x) b_info',
      ),
    ).toEqual(['a_total', 'b_info']);
    expect(metricNames('x_seconds_bucket offset 1h > bool 0 and y unless z or inf')).toEqual([
      'x_seconds_bucket',
      'y',
      'z',
    ]);
    expect(metricNames('histogram_quantile(0.99, sum without (le) (rate(h_bucket[1m])))')).toEqual([
      'h_bucket',
    ]);
    expect(metricNames('vector(1) + 2.5e3')).toEqual([]);
  });

  it('reads the metric of a label_values variable', () => {
    expect(variableMetric('label_values(up_total, instance)')).toBe('up_total');
    expect(variableMetric('label_values(instance)')).toBeUndefined();
  });
});

describe('exportedNames', () => {
  it('takes sample names, histogram suffixes, and families declared with no sample yet', () => {
    const scrape = [
      '# HELP a_total A.',
      '# TYPE a_total counter',
      '# TYPE b_total counter',
      'a_total{reason="x"} 3',
      '# TYPE h_seconds histogram',
      'h_seconds_bucket{le="+Inf"} 1',
      'h_seconds_sum 0.5',
      'h_seconds_count 1',
      '',
    ].join('\n');
    expect([...exportedNames(scrape)].sort()).toEqual([
      'a_total',
      'b_total',
      'h_seconds',
      'h_seconds_bucket',
      'h_seconds_count',
      'h_seconds_sum',
    ]);
  });
});

describe('dashboardQueries', () => {
  it('collects every panel, nested ones in rows included, and label_values variables', () => {
    const queries = dashboardQueries({
      panels: [
        { title: 'one', targets: [{ expr: 'rate(a_total[1m])' }, { expr: 'b' }] },
        { title: 'row', panels: [{ title: 'inner', targets: [{ expr: 'c' }] }] },
      ],
      templating: {
        list: [
          { name: 'instance', query: { query: 'label_values(d_total, instance)' } },
          { name: 'datasource', query: 'prometheus' },
        ],
      },
    });
    expect(Object.fromEntries(queries)).toEqual({
      one: ['a_total', 'b'],
      inner: ['c'],
      $instance: ['d_total'],
    });
  });
});
