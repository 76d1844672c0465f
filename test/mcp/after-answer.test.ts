/**
 * Observation hooks (server/mcp/after-answer.ts) run after the answer's microtasks, in the
 * order queued, one turn's hooks together; a throwing hook is logged and the others still run.
 */
import { describe, expect, test } from 'vitest';
import { afterAnswer } from '../../server/mcp/after-answer.js';
import type { Logger } from '../../server/log.js';

function recordingLog(): { log: Logger; errors: string[] } {
  const errors: string[] = [];
  const log = { error: (_fields: unknown, message: string) => errors.push(message) } as unknown as Logger;
  return { log, errors };
}

const nextCheckPhase = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('afterAnswer', () => {
  test('hooks run after the microtasks of their turn, in the order queued; a throw is logged and the rest run', async () => {
    const { log, errors } = recordingLog();
    const order: string[] = [];
    afterAnswer(log, 'first', () => order.push('first'));
    afterAnswer(log, 'broken', () => {
      throw new Error('observer bug');
    });
    void Promise.resolve().then(() => order.push('answer sent (microtask)'));
    afterAnswer(log, 'second', () => order.push('second'));
    expect(order).toEqual([]);
    await nextCheckPhase();
    expect(order).toEqual(['answer sent (microtask)', 'first', 'second']);
    expect(errors).toEqual(['broken hook threw']);
  });

  test('a hook queued by a running hook runs in a later turn, not in the same run', async () => {
    const { log } = recordingLog();
    const order: string[] = [];
    afterAnswer(log, 'outer', () => {
      order.push('outer');
      afterAnswer(log, 'inner', () => order.push('inner'));
    });
    await nextCheckPhase();
    expect(order).toEqual(['outer']);
    await nextCheckPhase();
    expect(order).toEqual(['outer', 'inner']);
  });
});
