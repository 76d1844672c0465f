/**
 * Where a process's fdatasync time goes, from a system-wide perf trace: in the kernel and on the
 * disk (until the syncing thread is woken) or waiting for a CPU (from the wakeup until the call
 * returns), and, for the long waits, what the CPU the thread was woken onto ran meanwhile; and
 * which calls also wrote a metadata block (the syncing thread's own block requests).
 * docs/BENCHMARKS.md ("What moves the engine's figures") shows it run on the 64-caller loop.
 *
 *   perf record -a -m 16M -o trace.perf -e syscalls:sys_enter_fdatasync -e syscalls:sys_exit_fdatasync \
 *     -e sched:sched_waking -e sched:sched_switch -e block:block_rq_issue -- sleep 2
 *   perf script -i trace.perf -F comm,pid,tid,cpu,time,event,trace | node --import tsx bench/fdatasync-trace.ts [--pid N]
 *
 * Without --pid it reads the process that made the most fdatasync calls. On a VM, an idle CPU
 * (`swapper`) that does not run a thread woken onto it is a vCPU the host was not running.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { percentile } from './stats.js';

/** A wait for a CPU this long or longer is looked into (what the CPU ran meanwhile). */
const waitMsLong = 0.3;
/** Slow calls whose wait was at least this long are counted as made by the wait. */
const waitMsMadeSlow = 0.5;
/** Lines read at most: a 2 s trace of the 64-caller loop is ~60,000. */
const linesMax = 20_000_000;

interface TraceEvent {
  readonly pid: number;
  readonly tid: number;
  readonly cpu: number;
  readonly timeMs: number;
  readonly name: string;
  readonly args: string;
}

interface SyncCall {
  readonly pid: number;
  readonly tid: number;
  readonly enterMs: number;
  readonly exitMs: number;
  /** The syncing thread's last wakeup inside the call, if it slept and the wakeup was recorded. */
  readonly wake?: { readonly atMs: number; readonly cpu: number };
  /** From the process waking the idle syncing thread (handing it the call) to the call's start. */
  readonly handOffMs?: number;
  /** The syncing thread issued a metadata write inside the call (on ext4 without a journal: the file's inode block). */
  readonly wroteMetadata: boolean;
}

/** A wakeup this long before the call is not its hand-off. */
const handOffMsMax = 50;

// "node 10227/10235 [001] 26640.190236: syscalls:sys_enter_fdatasync: fd: 0x1a" (comm may hold spaces).
const linePattern = /^\s*.+?\s+(\d+)\/(\d+)\s+\[(\d+)\]\s+(\d+\.\d+):\s+([\w:]+):\s?(.*)$/;

function parseLine(line: string): TraceEvent | undefined {
  const m = linePattern.exec(line);
  if (!m) return undefined;
  return { pid: Number(m[1]), tid: Number(m[2]), cpu: Number(m[3]), timeMs: Number(m[4]) * 1000, name: m[5]!.replace(/^\w+:/, ''), args: m[6]! };
}

async function readEvents(input: NodeJS.ReadableStream): Promise<TraceEvent[]> {
  const events: TraceEvent[] = [];
  let lines = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (++lines > linesMax) throw new RangeError(`trace longer than ${linesMax} lines: record a shorter window`);
    const event = parseLine(line);
    if (event) events.push(event);
  }
  if (events.length === 0) throw new Error('no events read: expected `perf script -F comm,pid,tid,cpu,time,event,trace` output');
  return events.sort((a, b) => a.timeMs - b.timeMs);
}

function syncCalls(events: readonly TraceEvent[]): SyncCall[] {
  const entered = new Map<number, { pid: number; atMs: number; handOffMs?: number; wroteMetadata: boolean }>();
  const woken = new Map<number, { atMs: number; cpu: number; byPid: number }>();
  const calls: SyncCall[] = [];
  for (const e of events) {
    if (e.name === 'sched_waking') {
      const m = /pid=(\d+) .*target_cpu=(\d+)/.exec(e.args);
      if (m) woken.set(Number(m[1]), { atMs: e.timeMs, cpu: Number(m[2]), byPid: e.pid });
    } else if (e.name === 'sys_enter_fdatasync') {
      const handOff = woken.get(e.tid);
      const handOffMs = handOff && handOff.byPid === e.pid ? e.timeMs - handOff.atMs : undefined;
      entered.set(e.tid, { pid: e.pid, atMs: e.timeMs, wroteMetadata: false, ...(handOffMs !== undefined && handOffMs < handOffMsMax ? { handOffMs } : {}) });
      woken.delete(e.tid);
    } else if (e.name === 'block_rq_issue') {
      // Issued on the syncing thread inside its call: "254,0 WSM 4096 () ..." (W write, M metadata).
      const enter = entered.get(e.tid);
      if (enter && /^W\w*M/.test(requestKind(e))) enter.wroteMetadata = true;
    } else if (e.name === 'sys_exit_fdatasync') {
      const enter = entered.get(e.tid);
      if (!enter) continue; // entered before the trace began
      entered.delete(e.tid);
      const wake = woken.get(e.tid);
      calls.push({
        pid: enter.pid, tid: e.tid, enterMs: enter.atMs, exitMs: e.timeMs, wroteMetadata: enter.wroteMetadata,
        ...(wake ? { wake: { atMs: wake.atMs, cpu: wake.cpu } } : {}),
        ...(enter.handOffMs !== undefined ? { handOffMs: enter.handOffMs } : {}),
      });
    }
  }
  return calls;
}

/** The process with the most calls. */
function busiestPid(calls: readonly SyncCall[]): number {
  const counts = new Map<number, number>();
  for (const c of calls) counts.set(c.pid, (counts.get(c.pid) ?? 0) + 1);
  const [pid] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? [];
  if (pid === undefined) throw new Error('no complete fdatasync call in the trace: were syscalls:sys_enter/exit_fdatasync recorded?');
  return pid;
}

/** A block request's flags ("WS", "WSM", "FF", ...). */
const requestKind = (e: TraceEvent): string => /^\S+ (\S+)/.exec(e.args)?.[1] ?? '?';

const durationOf = (c: SyncCall): number => c.exitMs - c.enterMs;

const waitOf = (c: SyncCall): number => (c.wake ? c.exitMs - c.wake.atMs : 0);

/** What a thread is to the process traced. */
function taskClass(tid: number, pid: number, ourTids: ReadonlySet<number>): string {
  if (tid === 0) return 'idle';
  if (tid === pid) return 'our main thread';
  return ourTids.has(tid) ? 'our other threads' : 'other tasks';
}

/** What `cpu` ran during [fromMs, toMs), in ms per task class, from the sched_switch events. */
function cpuUse(switches: readonly TraceEvent[], cpu: number, fromMs: number, toMs: number, classOf: (tid: number) => string, into: Map<string, number>): void {
  let running: string | undefined;
  let sinceMs = fromMs;
  const account = (untilMs: number): void => {
    if (running !== undefined && untilMs > sinceMs) into.set(running, (into.get(running) ?? 0) + untilMs - sinceMs);
  };
  for (const s of switches) {
    if (s.cpu !== cpu) continue;
    if (s.timeMs >= toMs) break;
    const m = /next_pid=(\d+)/.exec(s.args);
    if (!m) continue;
    const next = classOf(Number(m[1]));
    if (s.timeMs <= fromMs) {
      running = next;
      continue;
    }
    account(s.timeMs);
    running = next;
    sinceMs = s.timeMs;
  }
  account(toMs);
}

function ms(x: number): string {
  return x.toFixed(3);
}

function ascending(values: number[]): Float64Array {
  return Float64Array.from(values).sort();
}

function spread(label: string, sorted: Float64Array): string {
  return `  ${label.padEnd(34)} p50 ${ms(percentile(sorted, 50))}  p90 ${ms(percentile(sorted, 90))}  p99 ${ms(percentile(sorted, 99))}  p99.9 ${ms(percentile(sorted, 99.9))}  max ${ms(sorted[sorted.length - 1]!)} ms`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { pid: { type: 'string' } }, allowPositionals: true, strict: true });
  if (positionals.length > 1) throw new Error('usage: fdatasync-trace [--pid N] [PERF_SCRIPT_TEXT]');
  if (values.pid !== undefined && !/^[1-9]\d{0,9}$/.test(values.pid)) throw new Error(`--pid: expected a process id, got '${values.pid}'`);
  const events = await readEvents(positionals[0] ? createReadStream(positionals[0]) : process.stdin);
  const all = syncCalls(events);
  const pid = values.pid !== undefined ? Number(values.pid) : busiestPid(all);
  const calls = all.filter((c) => c.pid === pid);
  if (calls.length === 0) throw new Error(`no fdatasync call of pid ${pid} in the trace`);
  const spanMs = events[events.length - 1]!.timeMs - events[0]!.timeMs;
  const lines: string[] = [];
  lines.push(`fdatasync calls of pid ${pid}: ${calls.length} in ${(spanMs / 1000).toFixed(2)} s, on ${new Set(calls.map((c) => c.tid)).size} threads`);
  const wholeMs = ascending(calls.map(durationOf));
  lines.push(spread('whole call', wholeMs));
  lines.push(spread('until woken (kernel and disk)', ascending(calls.map((c) => (c.wake ? c.wake.atMs : c.exitMs) - c.enterMs))));
  lines.push(spread('from wakeup to return (a CPU)', ascending(calls.map(waitOf))));
  const handOffs = calls.flatMap((c) => (c.handOffMs !== undefined ? [c.handOffMs] : []));
  if (handOffs.length > 0) lines.push(spread(`hand-off (${handOffs.length} calls)`, ascending(handOffs)));
  const withWake = calls.filter((c) => c.wake).length;
  if (withWake < calls.length / 2) {
    lines.push(`  (only ${withWake} of ${calls.length} calls have a recorded wakeup: wakeups from interrupts were lost, so the waits for a CPU are a lower bound)`);
  }
  const slowMs = percentile(wholeMs, 99);
  const slow = calls.filter((c) => durationOf(c) >= slowMs);
  lines.push(`slow calls (${ms(slowMs)} ms or more, the p99): ${slow.length}; of them waiting ${waitMsMadeSlow} ms or more for a CPU after the wakeup: ${slow.filter((c) => waitOf(c) >= waitMsMadeSlow).length}`);
  const withMetadata = calls.filter((c) => c.wroteMetadata);
  if (withMetadata.length > 0) {
    // One write more, after the data's, before the flush: on ext4 without a journal the inode's block, dirty after each clock tick's mtime/ctime/i_version update.
    lines.push(`calls that also wrote a metadata block: ${withMetadata.length} (${((100 * withMetadata.length) / calls.length).toFixed(1)} %, ${Math.round((1000 * withMetadata.length) / spanMs)}/s); of the slow calls: ${slow.filter((c) => c.wroteMetadata).length}`);
    lines.push(spread('with a metadata write', ascending(withMetadata.map(durationOf))));
    const without = calls.filter((c) => !c.wroteMetadata);
    if (without.length > 0) lines.push(spread('without', ascending(without.map(durationOf))));
  }

  const longWaits = calls.filter((c) => waitOf(c) >= waitMsLong);
  if (longWaits.length > 0) {
    const switches = events.filter((e) => e.name === 'sched_switch');
    const ourTids = new Set(events.filter((e) => e.pid === pid).map((e) => e.tid));
    const classOf = (tid: number): string => taskClass(tid, pid, ourTids);
    const use = new Map<string, number>();
    for (const c of longWaits) cpuUse(switches, c.wake!.cpu, c.wake!.atMs, c.exitMs, classOf, use);
    const total = [...use.values()].reduce((a, b) => a + b, 0);
    const shares = [...use].sort((a, b) => b[1] - a[1]).map(([what, t]) => `${what} ${((100 * t) / total).toFixed(0)} %`).join(', ');
    lines.push(`waits of ${waitMsLong} ms or more: ${longWaits.length} (${((100 * longWaits.length) / calls.length).toFixed(2)} % of calls); the CPU woken onto ran meanwhile: ${total > 0 ? shares : 'nothing recorded (was sched:sched_switch recorded?)'}`);
  }

  const issued = new Map<string, number>();
  for (const e of events) {
    if (e.name !== 'block_rq_issue') continue;
    const kind = requestKind(e);
    issued.set(kind, (issued.get(kind) ?? 0) + 1);
  }
  if (issued.size > 0) {
    lines.push(`block requests issued per second (all devices; FF = flush, M = metadata): ${[...issued].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${Math.round((1000 * n) / spanMs)}`).join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`fdatasync-trace: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
}
