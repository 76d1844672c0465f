/**
 * The CLI's progress bars (server/cli/progress.ts) say `eta ?` while the rate is unknown, not
 * cli-progress's own `NULL` or `INF`, which read as errors; a known eta is in seconds.
 */
import { PassThrough } from 'node:stream';
import { expect, test } from 'vitest';
import { ttyProgress } from '../../server/cli/progress.js';

function terminal(): { stream: PassThrough & { isTTY: boolean; columns: number }; text: () => string } {
  const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 120 });
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

test('a bar with no rate yet shows eta ?, then seconds once work moves', async () => {
  const { stream, text } = terminal();
  const progress = ttyProgress(true, stream);
  try {
    progress.onProgress('replay', 0, 1_000);
    await new Promise((resolve) => setTimeout(resolve, 150));
    progress.onProgress('replay', 0, 1_000); // no progress between two samples: no rate
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(text()).toContain('eta ?');
    for (let done = 100; done <= 500; done += 100) {
      progress.onProgress('replay', done, 1_000);
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
  } finally {
    progress.stop();
  }
  expect(text()).toMatch(/eta \d+s/);
  expect(text()).not.toMatch(/NULL|INF/);
});
