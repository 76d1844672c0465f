/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests: every
 * line must be a HELP, TYPE, comment or sample line of the grammar; samples must belong to a
 * family declared by a TYPE line before them; no series twice; histograms must have ascending
 * `le` buckets with non-decreasing counts and a +Inf bucket equal to `_count`.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help?: string;
  readonly samples: Sample[];
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(text: string, where: string): number {
  // Prometheus reads values with Go's ParseFloat, which takes NaN in any case (prom-client writes "Nan").
  if (text.toLowerCase() === 'nan') return Number.NaN;
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = text.slice(i, eq).trim();
    if (!labelName.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label value must be quoted`);
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`${where}: bad escape \\${next}`);
      } else if (text[j] === '\n') {
        throw new Error(`${where}: raw newline in label value`);
      } else {
        value += text[j];
      }
    }
    if (j >= text.length) throw new Error(`${where}: unterminated label value`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`${where}: expected ',' between labels`);
  }
  return labels;
}

function familyOf(families: Map<string, Family>, sampleName: string): Family | undefined {
  const exact = families.get(sampleName);
  if (exact) return exact;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const f = families.get(sampleName.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!metricName.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`${where}: bad type ${rest}`);
        const existing = families.get(name);
        if (existing && existing.samples.length > 0) throw new Error(`${where}: TYPE of ${name} after its samples`);
        if (existing && existing.type !== 'untyped') throw new Error(`${where}: TYPE of ${name} twice`);
        families.set(name, { name, type: rest as Family['type'], samples: [], ...(existing?.help !== undefined ? { help: existing.help } : {}) });
      } else {
        const f = families.get(name) ?? { name, type: 'untyped' as const, samples: [] };
        if (f.help !== undefined) throw new Error(`${where}: HELP of ${name} twice`);
        f.help = rest;
        families.set(name, f);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample line: ${line}`);
    const name = m[1]!;
    const labels = m[3] !== undefined ? parseLabels(m[3], where) : {};
    const value = parseValue(m[4]!, where);
    const family = familyOf(families, name);
    if (!family) throw new Error(`${where}: sample ${name} before any TYPE line of its family`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${where}: series ${key} twice`);
    seen.add(key);
    if (family.type === 'histogram' && name.endsWith('_bucket') && labels.le === undefined) throw new Error(`${where}: bucket without le`);
    family.samples.push({ name, labels, value });
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, Sample[]>();
  const groupKey = (s: Sample) => JSON.stringify(Object.entries(s.labels).filter(([k]) => k !== 'le').sort());
  for (const s of family.samples) {
    const list = groups.get(groupKey(s)) ?? [];
    list.push(s);
    groups.set(groupKey(s), list);
  }
  for (const [key, samples] of groups) {
    const buckets = samples.filter((s) => s.name === `${family.name}_bucket`);
    const count = samples.find((s) => s.name === `${family.name}_count`);
    if (!count || !samples.some((s) => s.name === `${family.name}_sum`)) throw new Error(`${family.name}${key}: histogram without _sum or _count`);
    let lastLe = Number.NEGATIVE_INFINITY;
    let lastCount = 0;
    for (const b of buckets) {
      const le = parseValue(b.labels.le!, family.name);
      if (le <= lastLe) throw new Error(`${family.name}${key}: le ${b.labels.le} not ascending`);
      if (b.value < lastCount) throw new Error(`${family.name}${key}: bucket counts decrease at le ${b.labels.le}`);
      lastLe = le;
      lastCount = b.value;
    }
    if (lastLe !== Number.POSITIVE_INFINITY) throw new Error(`${family.name}${key}: no +Inf bucket`);
    if (lastCount !== count.value) throw new Error(`${family.name}${key}: +Inf bucket ${lastCount} != _count ${count.value}`);
  }
}
