// The metric names a Grafana dashboard queries, read from its PromQL, and the metric families a
// Prometheus text scrape declares: enough to tell when a panel asks for a metric the agent does not export.

import { parseExposition } from '../../agent/tools/doctor/exposition.ts';

/** Words of PromQL that look like identifiers but never name a metric. */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'inf',
  'nan',
  'atan2',
]);

/**
 * Metric names in one PromQL expression: identifiers not followed by `(` (functions, aggregations) outside
 * strings, label matchers, ranges and the label lists of `by`/`without`/`on`/`ignoring`/`group_*`.
 * Grafana's variables ($job, ${datasource}, $__rate_interval) are removed first.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*(?![\w:]|\s*\()/g)) {
    if (!KEYWORDS.has(match[0].toLowerCase())) names.add(match[0]);
  }
  return [...names];
}

/** The metric a `label_values(metric, label)` variable query reads; none for `label_values(label)`. */
export function variableMetric(query: string): string | undefined {
  return /^\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*,/.exec(query)?.[1];
}

/**
 * Every name a scrape can answer a query for: each sample's name (with a histogram's `_bucket`, `_sum` and
 * `_count`) and each family its `# TYPE` line declares, so a labelled counter no event has touched yet
 * still counts as exported.
 */
export function exportedNames(scrape: string): Set<string> {
  const { declared, samples } = parseExposition(scrape);
  return new Set([...declared, ...samples.map(({ name }) => name)]);
}

interface Target {
  expr?: string;
}
interface Panel {
  type?: string;
  title?: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type?: string;
  query?: string | { query?: string };
}
export interface Dashboard {
  panels: Panel[];
  templating?: { list: Variable[] };
}

/** Every metric each panel (by title) and each variable (by `$name`) of a dashboard queries. */
export function dashboardQueries(dashboard: Dashboard): Map<string, string[]> {
  const queries = new Map<string, string[]>();
  const visit = (panel: Panel): void => {
    const names = (panel.targets ?? []).flatMap((target) => metricNames(target.expr ?? ''));
    if (names.length > 0) queries.set(panel.title ?? '(untitled)', [...new Set(names)]);
    for (const inner of panel.panels ?? []) visit(inner);
  };
  for (const panel of dashboard.panels) visit(panel);
  for (const variable of dashboard.templating?.list ?? []) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    const metric = query === undefined ? undefined : variableMetric(query);
    if (metric !== undefined) queries.set(`$${variable.name}`, [metric]);
  }
  return queries;
}
