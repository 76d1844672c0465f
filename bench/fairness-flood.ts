/**
 * The fairness bench's flooding tenant, as its own process (its CPU is a client's, not the
 * server's): `callers` closed-loop callers writing as fast as answers come back, over at most
 * `sockets` keep-alive connections — the offered load of one real, aggressive client.
 *  - greedy: a refused call waits what Retry-After says, as a client following HTTP does;
 *  - hostile: a refused call is retried after 1 ms, ignoring Retry-After. It is still bounded
 *    by its connections: a client can only send what its sockets carry.
 * Usage: node --import tsx bench/fairness-flood.ts '{"url":…,"token":…,"kind":…,"callers":…,"sockets":…}'
 * Prints `{"started":true}` once its first call is answered; on SIGTERM stops, prints its
 * counts as one JSON line and exits.
 */
import { mcpHttpCaller } from './fairness-client.js';

interface FloodPlan {
  readonly url: string;
  readonly token: string;
  readonly kind: 'greedy' | 'hostile';
  readonly callers: number;
  readonly sockets: number;
}

/** The hostile flood's pause after a refusal. */
const hostileRetryMs = 1;
/** A greedy caller never sleeps longer than this on one Retry-After (the bench must end). */
const greedyPauseMsMax = 2_000;

const plan = JSON.parse(process.argv[2] ?? '') as FloodPlan;
const caller = mcpHttpCaller(plan.url, plan.token, plan.sockets);
const counts = { acknowledged: 0, refused: 0, failed: 0, startedAtMs: performance.now(), stoppedAtMs: 0 };
let stopped = false;
let firstFailure: string | undefined;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const loops = Array.from({ length: plan.callers }, async (_, index) => {
  for (let seq = 0; !stopped; seq++) {
    const outcome = await caller.put(`flood-${index}-${seq % 64}`, 'flood').catch((error: unknown) => ({ kind: 'failed' as const, status: 0, body: String(error) }));
    if (counts.acknowledged + counts.refused === 0) process.stdout.write('{"started":true}\n');
    if (outcome.kind === 'ok') counts.acknowledged++;
    else if (outcome.kind === 'busy') {
      counts.refused++;
      await sleep(plan.kind === 'hostile' ? hostileRetryMs : Math.min(greedyPauseMsMax, outcome.retryAfterS * 1000));
    } else {
      counts.failed++;
      firstFailure ??= `${outcome.status} ${outcome.body}`;
      await sleep(hostileRetryMs);
    }
  }
});

process.once('SIGTERM', () => {
  stopped = true;
  counts.stoppedAtMs = performance.now();
  void Promise.all(loops).then(() => {
    caller.close();
    process.stdout.write(`${JSON.stringify({ ...counts, firstFailure })}\n`);
    process.exit(0);
  });
});
