/**
 * The benchmark output format. One line per figure, ours beside a peer measured in the same
 * run. `--json` prints one JSON object per line:
 *   {"bench", "metric", "unit", "ours", "peer", "peer_value", "ratio", "better"}
 * `ratio` is oriented so that > 1 means we are better: ours/peer when higher is better
 * (throughput, recall), peer/ours when lower is better (latency, time, bytes). Lines without
 * a peer carry null peer, peer_value and ratio; peer-only lines carry null ours and ratio.
 */

export type Better = 'higher' | 'lower';

export interface BenchLine {
  readonly bench: string;
  readonly metric: string;
  readonly unit: string;
  readonly ours: number | null;
  readonly peer: string | null;
  readonly peer_value: number | null;
  readonly ratio: number | null;
  readonly better: Better;
}

export interface Figure {
  readonly metric: string;
  readonly unit: string;
  /** Absent for a peer-only figure (our side measured by another benchmark file, later). */
  readonly ours?: number;
  readonly better: Better;
  readonly peer?: { readonly name: string; readonly value: number };
}

export function benchLine(bench: string, figure: Figure): BenchLine {
  const peer = figure.peer;
  let ratio: number | null = null;
  if (peer && figure.ours !== undefined && peer.value > 0 && figure.ours > 0) {
    ratio = figure.better === 'higher' ? figure.ours / peer.value : peer.value / figure.ours;
  }
  return {
    bench,
    metric: figure.metric,
    unit: figure.unit,
    ours: figure.ours === undefined ? null : round(figure.ours),
    peer: peer?.name ?? null,
    peer_value: peer ? round(peer.value) : null,
    ratio: ratio === null ? null : round(ratio),
    better: figure.better,
  };
}

/** Four significant digits: figures, not noise. */
function round(value: number): number {
  if (value === 0 || !Number.isFinite(value)) return value;
  const digits = Math.max(0, 3 - Math.floor(Math.log10(Math.abs(value))));
  return Number(value.toFixed(Math.min(digits, 6)));
}

export function jsonLine(line: BenchLine): string {
  return JSON.stringify(line);
}

const columns = [
  { title: 'bench', width: 14, get: (l: BenchLine) => l.bench },
  { title: 'metric', width: 52, get: (l: BenchLine) => l.metric },
  { title: 'ours', width: 12, get: (l: BenchLine) => (l.ours === null ? '-' : format(l.ours)), right: true },
  { title: 'unit', width: 10, get: (l: BenchLine) => l.unit },
  { title: 'peer', width: 34, get: (l: BenchLine) => l.peer ?? '-' },
  { title: 'peer value', width: 12, get: (l: BenchLine) => (l.peer_value === null ? '-' : format(l.peer_value)), right: true },
  { title: 'x better', width: 9, get: (l: BenchLine) => (l.ratio === null ? '-' : `${format(l.ratio)}x`), right: true },
] as const;

export function tableHeader(): string {
  const head = columns.map((c) => pad(c.title, c.width, 'right' in c)).join('  ');
  const note = '(x better > 1: we beat the peer; throughput/recall ours/peer, latency/time/bytes peer/ours)';
  return `${head}\n${'-'.repeat(head.length)}\n${note}`;
}

export function tableRow(line: BenchLine): string {
  return columns.map((c) => pad(c.get(line), c.width, 'right' in c)).join('  ');
}

function format(value: number): string {
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  return String(value);
}

function pad(text: string, width: number, right: boolean): string {
  if (text.length >= width) return text;
  return right ? text.padStart(width) : text.padEnd(width);
}
