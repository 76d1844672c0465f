/**
 * The verifier's chain proof on crafted batches (no services): every kind of damage is named
 * with its tenant, key and batch.
 */
import { describe, expect, test } from 'vitest';
import { auditBatchKey, encodeAuditBatch, genesisSha256 } from '../../storage/audit/batch.js';
import { checkAuditChain, stagingGap, type FetchedBatch } from '../../storage/audit/verifier.js';

function chain(tenant: string, sizes: number[]): FetchedBatch[] {
  let prev = genesisSha256;
  let seq = 1;
  return sizes.map((size, i) => {
    const events = Array.from({ length: size }, () => ({ seq: seq++, source: 'access_log', sourceSeq: seq, event: { n: seq } }));
    const encoded = encodeAuditBatch({ tenant, batchSeq: i + 1, prevSha256: prev }, events);
    prev = encoded.sha256;
    return { key: auditBatchKey(tenant, i + 1), batchSeq: i + 1, versionId: `v${i + 1}`, body: encoded.body, metadataSha256: encoded.sha256, lockMode: 'COMPLIANCE' };
  });
}

describe('audit chain proof', () => {
  test('a whole chain proves out with its counts', () => {
    const { summary, problems } = checkAuditChain('t', chain('t', [3, 4, 2]));
    expect(problems).toEqual([]);
    expect(summary).toMatchObject({ batches: 3, events: 9, lastSeq: 9 });
  });

  test('a missing batch is named, and the link across it is not blamed twice', () => {
    const batches = chain('t', [2, 2, 2, 2]);
    const { problems } = checkAuditChain('t', [batches[0]!, batches[2]!, batches[3]!]);
    expect(problems).toEqual([expect.objectContaining({ kind: 'missing_batch', tenant: 't', batchSeq: 2 })]);
  });

  test('altered bytes are named as altered and break the next link', () => {
    const batches = chain('t', [2, 2]);
    const text = batches[0]!.body.toString().replace('"n":2', '"n":99');
    const altered = { ...batches[0]!, body: Buffer.from(text) };
    const { problems } = checkAuditChain('t', [altered, batches[1]!]);
    expect(problems.map((p) => [p.kind, p.batchSeq])).toEqual([
      ['altered', 1],
      ['chain_break', 2],
    ]);
  });

  test('a gap in sequences between batches is named', () => {
    const first = chain('t', [3])[0]!;
    const skipping = encodeAuditBatch(
      { tenant: 't', batchSeq: 2, prevSha256: first.metadataSha256! },
      [{ seq: 5, source: 'access_log', sourceSeq: 5, event: {} }],
    );
    const second: FetchedBatch = { key: auditBatchKey('t', 2), batchSeq: 2, versionId: 'v2', body: skipping.body, metadataSha256: skipping.sha256, lockMode: 'COMPLIANCE' };
    const { problems } = checkAuditChain('t', [first, second]);
    expect(problems).toEqual([expect.objectContaining({ kind: 'gap', batchSeq: 2, detail: 'starts at seq 5, previous batch ended at 3' })]);
  });

  test('a batch whose count disagrees with its events, or that is not locked, is named', () => {
    const [b] = chain('t', [2]);
    const text = b!.body.toString().replace('"count":2', '"count":3');
    const { problems } = checkAuditChain('t', [{ ...b!, body: Buffer.from(text), metadataSha256: undefined, lockMode: 'GOVERNANCE' }]);
    expect(problems.map((p) => p.kind).sort()).toEqual(['bad_batch', 'bad_batch', 'not_locked']);
  });

  function recordOf(b: FetchedBatch, versionId: string | null = b.versionId) {
    return {
      tenant: 't', batchSeq: b.batchSeq, firstSeq: b.batchSeq, lastSeq: b.batchSeq, count: 1, sha256: b.metadataSha256!,
      prevSha256: '', key: b.key, versionId, body: null,
    };
  }

  test('a batch recorded as shipped but absent from the bucket is missing; a different version is altered', () => {
    const batches = chain('t', [1, 1]);
    const recorded = batches.map((b) => recordOf(b));
    const { problems } = checkAuditChain('t', [{ ...batches[0]!, versionId: 'other' }], recorded);
    expect(problems.map((p) => [p.kind, p.batchSeq])).toEqual([
      ['altered', 1],
      ['missing_batch', 2],
    ]);
  });

  test('a well-linked batch after the last one the control plane recorded is unexpected, unless it is the pending upload', () => {
    const batches = chain('t', [1, 1, 1]);
    const [first, second, third] = batches;
    const forged = checkAuditChain('t', batches, [recordOf(first!)]);
    expect(forged.problems.map((p) => [p.kind, p.batchSeq])).toEqual([
      ['unexpected_object', 2],
      ['unexpected_object', 3],
    ]);
    const inFlight = checkAuditChain('t', [first!, second!], [recordOf(first!), recordOf(second!, null)]);
    expect(inFlight.problems).toEqual([]);
    const otherBytes = checkAuditChain('t', [first!, second!], [recordOf(first!), { ...recordOf(second!, null), sha256: third!.metadataSha256! }]);
    expect(otherBytes.problems).toEqual([expect.objectContaining({ kind: 'unexpected_object', batchSeq: 2 })]);
    // Without the control plane there is nothing to cross-check against.
    expect(checkAuditChain('t', batches).problems).toEqual([]);
  });

  test('staging that does not run gap-free from the last shipped seq to the next seq is a gap', () => {
    const span = { tenant: 't', nextSeq: 11, shippedThroughSeq: 4 };
    expect(stagingGap({ ...span, staged: 6, stagedFirstSeq: 5, stagedLastSeq: 10 })).toBeUndefined();
    expect(stagingGap({ tenant: 't', nextSeq: 5, shippedThroughSeq: 4, staged: 0 })).toBeUndefined();
    const cases = [
      { ...span, staged: 5, stagedFirstSeq: 5, stagedLastSeq: 10 }, // a hole inside
      { ...span, staged: 5, stagedFirstSeq: 5, stagedLastSeq: 9 }, // the tail removed
      { ...span, staged: 5, stagedFirstSeq: 6, stagedLastSeq: 10 }, // the head removed
      { ...span, staged: 0 }, // all removed
    ];
    for (const c of cases) expect(stagingGap(c)).toMatchObject({ kind: 'gap', tenant: 't', detail: expect.stringContaining('must hold seq 5..10 (6 events') });
  });
});
