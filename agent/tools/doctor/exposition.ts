/**
 * The Prometheus text exposition format (version 0.0.4), read as far as doctor needs it for the agent's own
 * /metrics: the samples with their labels, and the families a `# TYPE` line declares. Pure; a line that is
 * no valid sample is skipped, so a scrape of something else yields nothing rather than an error.
 */

export interface Sample {
  name: string;
  labels: ReadonlyMap<string, string>;
  value: number;
}

export interface Exposition {
  /** Families named by a `# TYPE` line: a labelled counter nothing has counted yet has no sample, only this. */
  declared: ReadonlySet<string>;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(,?)/y;
const LABELS_END = /[ \t]*\}/y;
/** The value and an optional timestamp in milliseconds, which doctor has no use for. */
const VALUE = /^[ \t]+(\S+)(?:[ \t]+-?\d+)?[ \t]*$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TYPE_LINE = /^#[ \t]+TYPE[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]/;
const SPECIAL_VALUES: Readonly<Record<string, number>> = {
  NaN: Number.NaN,
  Inf: Number.POSITIVE_INFINITY,
  '+Inf': Number.POSITIVE_INFINITY,
  '-Inf': Number.NEGATIVE_INFINITY,
};

/** A label value as written, escapes (\\, \", \n) undone. */
function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (escaped, char: string) =>
    char === 'n' ? '\n' : char === '\\' || char === '"' ? char : escaped,
  );
}

function sampleValue(text: string): number | null {
  if (Object.hasOwn(SPECIAL_VALUES, text)) return SPECIAL_VALUES[text] ?? null;
  return FLOAT.test(text) ? Number(text) : null;
}

/** The labels from just after `{` to just after `}`, or null when they are malformed. */
function labelsAt(line: string, from: number): { labels: Map<string, string>; end: number } | null {
  const labels = new Map<string, string>();
  let at = from;
  for (;;) {
    LABELS_END.lastIndex = at;
    if (LABELS_END.test(line)) return { labels, end: LABELS_END.lastIndex };
    LABEL.lastIndex = at;
    const label = LABEL.exec(line);
    if (label === null) return null;
    labels.set(label[1] ?? '', unescapeLabel(label[2] ?? ''));
    at = LABEL.lastIndex;
    if (label[3] === '') {
      LABELS_END.lastIndex = at;
      return LABELS_END.test(line) ? { labels, end: LABELS_END.lastIndex } : null;
    }
  }
}

/** One sample line, or null for anything else (blank, comment, malformed). */
export function parseSample(line: string): Sample | null {
  const name = METRIC_NAME.exec(line)?.[0];
  if (name === undefined) return null;
  let labels: ReadonlyMap<string, string> = new Map();
  let end = name.length;
  if (line.charAt(end) === '{') {
    const parsed = labelsAt(line, end + 1);
    if (parsed === null) return null;
    ({ labels, end } = parsed);
  }
  const text = VALUE.exec(line.slice(end))?.[1];
  const value = text === undefined ? null : sampleValue(text);
  return value === null ? null : { name, labels, value };
}

export function parseExposition(text: string): Exposition {
  const declared = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#')) {
      const family = TYPE_LINE.exec(line)?.[1];
      if (family !== undefined) declared.add(family);
      continue;
    }
    const sample = parseSample(line);
    if (sample !== null) samples.push(sample);
  }
  return { declared, samples };
}
