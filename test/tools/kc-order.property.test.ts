/**
 * Property: the kc_* projection of a set of Keycloak events does not depend on the order they
 * arrive in. Any arrival order of the events, with some delivered twice (under other landings),
 * leaves kc_users, kc_memberships and kc_role_grants equal to applying each event once in time
 * order (time, then event id). Before, the projection was the state of the arrival order: a
 * user deleted at t=5 came back from an update of t=3 arriving after the deletion.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { Store } from '../../storage/store.js';
import type { ReducerContext } from '../../storage/reducer.js';
import { kcApplyEvent, kcTables } from '../../tools/kc.js';
import { eventStamp } from '../../tools/kc-clock.js';

const projector = { tenant: 'acme', subject: 'kc-projector' };
type KcEvent = Record<string, unknown> & { time: number };

const user = fc.constantFrom('u1', 'u2');
const time = fc.integer({ min: 1, max: 8 }); // few times: ties are common
const name = fc.constantFrom('ann', 'bob', 'cy');
const admin = (operationType: string, resourceType: string, resourcePath: string, representation?: unknown) => ({
  operationType, resourceType, resourcePath, ...(representation !== undefined && { representation: JSON.stringify(representation) }),
});

/** One event without its id and time: every kind of change the projection reads. */
const change: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ u: user, n: name }).map(({ u, n }) => ({ type: 'REGISTER', userId: u, details: { username: n, email: `${n}@x.org` } })),
  fc.record({ u: user, n: name }).map(({ u, n }) => ({ type: 'UPDATE_EMAIL', userId: u, details: { updated_email: `${n}@y.org` } })),
  user.map((u) => ({ type: 'access.VERIFY_EMAIL', userId: u, details: {} })),
  fc.record({ u: user, n: name }).map(({ u, n }) => ({ type: 'UPDATE_PROFILE', userId: u, details: { updated_first_name: n } })),
  user.map((u) => ({ type: 'DELETE_ACCOUNT', userId: u, details: {} })),
  fc.record({ u: user, op: fc.constantFrom('CREATE', 'UPDATE'), n: name, enabled: fc.boolean() })
    .map(({ u, op, n, enabled }) => admin(op, 'USER', `users/${u}`, { username: n, enabled })),
  user.map((u) => admin('DELETE', 'USER', `users/${u}`)),
  fc.record({ u: user, op: fc.constantFrom('CREATE', 'DELETE'), g: fc.constantFrom('g1', 'g2'), n: name })
    .map(({ u, op, g, n }) => admin(op, 'GROUP_MEMBERSHIP', `users/${u}/groups/${g}`, { id: g, path: `/${n}` })),
  fc.record({ u: user, op: fc.constantFrom('CREATE', 'DELETE') }).map(({ u, op }) => admin(op, 'ORGANIZATION_MEMBERSHIP', `organizations/o1/members/${u}`)),
  fc.record({ u: user, op: fc.constantFrom('CREATE', 'DELETE'), roles: fc.subarray(['r1', 'r2', 'r3'], { minLength: 1 }) })
    .map(({ u, op, roles }) => admin(op, 'REALM_ROLE_MAPPING', `users/${u}/role-mappings/realm`, roles.map((r) => ({ name: r })))),
  fc.record({ u: user, op: fc.constantFrom('CREATE', 'DELETE') })
    .map(({ u, op }) => ({ type: `admin.CLIENT_ROLE_MAPPING-${op}`, resourcePath: `users/${u}/role-mappings/clients/c1`, representation: '[{"name":"r1"}]' })),
);

/**
 * Events with distinct ids (as `id` or the extension's `uid`; some with none, ordered by their
 * content's hash), and an arrival: each at least once, some twice, in any order.
 */
const scenario = fc.array(fc.record({ change, time, named: fc.constantFrom('id', 'uid', 'none') }), { minLength: 1, maxLength: 14 }).chain((drawn) => {
  const events: KcEvent[] = drawn.map((d, i) => ({
    ...d.change, time: d.time, ...(d.named === 'id' && { id: `e${i}` }), ...(d.named === 'uid' && { uid: `e${i}` }), ...(d.named === 'none' && { seq: i }),
  }));
  const again = fc.array(fc.nat(events.length - 1), { maxLength: 4 });
  return again.chain((twice) => {
    const deliveries = [...events.keys(), ...twice];
    return fc.shuffledSubarray(deliveries, { minLength: deliveries.length, maxLength: deliveries.length })
      .map((arrival) => ({ events, arrival }));
  });
});

/** Each event once, by Keycloak time then order key (the event id; with none, its content's hash: eventStamp's rule). */
function timeOrder(events: readonly KcEvent[]): KcEvent[] {
  const noClock = {} as ReducerContext; // every event here has a time: the transaction's is not read
  const key = (e: KcEvent) => eventStamp(noClock, e).key;
  return [...events].sort((a, b) => (a.time !== b.time ? a.time - b.time : key(a) < key(b) ? -1 : 1));
}

async function projection(events: readonly KcEvent[]): Promise<Record<string, unknown[]>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-kc-order-'));
  const store = await Store.open({ dir, module: { tables: kcTables, reducers: [kcApplyEvent] } });
  try {
    for (const [landing, event] of events.entries()) await store.call('kc_apply_event', { landing_id: `l${landing}`, event }, projector);
    return await store.read((view) => Object.fromEntries(['kc_users', 'kc_memberships', 'kc_role_grants'].map((t) => [t, [...view.table(t).scan()]])));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('any arrival order of Keycloak events, with redeliveries, projects what time order projects', async () => {
  await fc.assert(fc.asyncProperty(scenario, async ({ events, arrival }) => {
    const [expected, got] = await Promise.all([projection(timeOrder(events)), projection(arrival.map((i) => events[i]!))]);
    expect(got).toEqual(expected);
  }), { numRuns: 50 });
}, 60_000);
