/** Configuration from the environment: defaults, every problem at once, secrets never printed. */
import path from 'node:path';
import { expect, test } from 'vitest';
import { ConfigError, loadConfig, redactedConfig } from '../../server/config.js';
import { idleCloseMsDefault, openTenantsMaxDefault, slotWaitMsDefault, slotWaitMsMax } from '../../server/tenants/registry.js';
import { snapshotEveryMsDefault, snapshotEveryTxDefault } from '../../tools/tenant-snapshots.js';
import { tenantRowBytesMaxDefault } from '../../storage/store.js';

test('an empty environment is local mode on 127.0.0.1:8787 with ./data', () => {
  const config = loadConfig({}, '/srv/app');
  expect(config).toMatchObject({
    mode: 'local',
    dataDir: path.resolve('/srv/app', 'data'),
    http: { host: '127.0.0.1', port: 8787, allowedOrigins: [] },
    logLevel: 'info',
  });
  expect(config.auth).toBeUndefined();
});

test('load limits: a queue of 0 (refuse at once) and the server-wide running bound are accepted', () => {
  const config = loadConfig({ IOBOXX_TENANT_QUEUE_MAX: '0', IOBOXX_RUNNING_CALLS_MAX: '3' }, '/srv/app');
  expect(config.loadLimits.queuedMax).toBe(0);
  expect(config.runningCallsMax).toBe(3);
  // A lone tenant's bound: unset, the guard takes twice IOBOXX_TENANT_INFLIGHT_MAX; set, as given.
  expect(config.loadLimits.aloneInFlightMax).toBeUndefined();
  expect(loadConfig({ IOBOXX_TENANT_ALONE_INFLIGHT_MAX: '48' }, '/srv/app').loadLimits.aloneInFlightMax).toBe(48);
  expect(() => loadConfig({ IOBOXX_TENANT_ALONE_INFLIGHT_MAX: '0' }, '/srv/app')).toThrow(/IOBOXX_TENANT_ALONE_INFLIGHT_MAX/);
});

test('a lone tenant\'s bound below IOBOXX_TENANT_INFLIGHT_MAX is a configuration problem, reported with the others (it was a stack trace from the load guard once serve --http had started)', () => {
  let error: unknown;
  try {
    loadConfig({ IOBOXX_TENANT_INFLIGHT_MAX: '20', IOBOXX_TENANT_ALONE_INFLIGHT_MAX: '10', IOBOXX_HTTP_PORT: 'abc' }, '/srv/app');
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).problems).toEqual([
    'IOBOXX_HTTP_PORT: expected an integer from 0 to 65535',
    'IOBOXX_TENANT_ALONE_INFLIGHT_MAX: 10 is below IOBOXX_TENANT_INFLIGHT_MAX (20): it must be at least that',
  ]);
  // Below the default IOBOXX_TENANT_INFLIGHT_MAX (16) too; equal to it is fine.
  expect(() => loadConfig({ IOBOXX_TENANT_ALONE_INFLIGHT_MAX: '8' }, '/srv/app')).toThrow('IOBOXX_TENANT_ALONE_INFLIGHT_MAX: 8 is below IOBOXX_TENANT_INFLIGHT_MAX (16)');
  expect(loadConfig({ IOBOXX_TENANT_INFLIGHT_MAX: '20', IOBOXX_TENANT_ALONE_INFLIGHT_MAX: '20' }, '/srv/app').loadLimits.aloneInFlightMax).toBe(20);
});

test('tenant store limits: IOBOXX_MAX_OPEN_TENANTS, IOBOXX_TENANT_IDLE_CLOSE_MS and IOBOXX_TENANT_SLOT_WAIT_MS reach the config, bad values are refused', () => {
  expect(loadConfig({}, '/srv/app')).toMatchObject({ maxOpenTenants: openTenantsMaxDefault, tenantIdleCloseMs: idleCloseMsDefault, tenantSlotWaitMs: slotWaitMsDefault });
  expect(loadConfig({ IOBOXX_MAX_OPEN_TENANTS: '12', IOBOXX_TENANT_IDLE_CLOSE_MS: '500', IOBOXX_TENANT_SLOT_WAIT_MS: '250' }, '/srv/app'))
    .toMatchObject({ maxOpenTenants: 12, tenantIdleCloseMs: 500, tenantSlotWaitMs: 250 });
  expect(() => loadConfig({ IOBOXX_TENANT_SLOT_WAIT_MS: String(slotWaitMsMax + 1) }, '/srv/app')).toThrow(/IOBOXX_TENANT_SLOT_WAIT_MS/);
  expect(() => loadConfig({ IOBOXX_TENANT_IDLE_CLOSE_MS: 'abc' }, '/srv/app')).toThrow(/IOBOXX_TENANT_IDLE_CLOSE_MS/);
  expect(() => loadConfig({ IOBOXX_MAX_OPEN_TENANTS: '0' }, '/srv/app')).toThrow(/IOBOXX_MAX_OPEN_TENANTS/);
});

test('memory bounds: IOBOXX_TENANT_ROW_BYTES_MAX (1 GiB by default) and IOBOXX_STORES_MEMORY_BYTES_MAX (unset: from the machine) reach the config, bad values are refused', () => {
  const config = loadConfig({}, '/srv/app');
  expect(config.tenantRowBytesMax).toBe(tenantRowBytesMaxDefault);
  expect(config.storesMemoryBytesMax).toBeUndefined();
  expect(loadConfig({ IOBOXX_TENANT_ROW_BYTES_MAX: '65536', IOBOXX_STORES_MEMORY_BYTES_MAX: '1000000' }, '/srv/app')).toMatchObject({ tenantRowBytesMax: 65_536, storesMemoryBytesMax: 1_000_000 });
  expect(() => loadConfig({ IOBOXX_TENANT_ROW_BYTES_MAX: '1GB' }, '/srv/app')).toThrow(/IOBOXX_TENANT_ROW_BYTES_MAX/);
  expect(() => loadConfig({ IOBOXX_TENANT_ROW_BYTES_MAX: '0' }, '/srv/app')).toThrow(/IOBOXX_TENANT_ROW_BYTES_MAX/);
  expect(() => loadConfig({ IOBOXX_STORES_MEMORY_BYTES_MAX: '0' }, '/srv/app')).toThrow(/IOBOXX_STORES_MEMORY_BYTES_MAX/);
});

test('periodic tenant snapshots: IOBOXX_SNAPSHOT_EVERY_TX and _MS, on by default, 0 turns one off, bad values refused', () => {
  expect(loadConfig({}, '/srv/app')).toMatchObject({ snapshotEveryTx: snapshotEveryTxDefault, snapshotEveryMs: snapshotEveryMsDefault });
  expect(loadConfig({ IOBOXX_SNAPSHOT_EVERY_TX: '0', IOBOXX_SNAPSHOT_EVERY_MS: '60000' }, '/srv/app')).toMatchObject({ snapshotEveryTx: 0, snapshotEveryMs: 60_000 });
  expect(() => loadConfig({ IOBOXX_SNAPSHOT_EVERY_TX: '-1' }, '/srv/app')).toThrow(/IOBOXX_SNAPSHOT_EVERY_TX/);
});

test('values are parsed: port, origins, level, relative data dir', () => {
  const config = loadConfig(
    { IOBOXX_DATA_DIR: 'mem', IOBOXX_HTTP_PORT: '9000', IOBOXX_ALLOWED_ORIGINS: 'https://a.example, b.example', IOBOXX_LOG_LEVEL: 'debug' },
    '/srv/app',
  );
  expect(config.dataDir).toBe('/srv/app/mem');
  expect(config.http.port).toBe(9000);
  expect(config.http.allowedOrigins).toEqual(['https://a.example', 'b.example']);
  expect(config.logLevel).toBe('debug');
});

test('every bad value is reported in one error, without echoing values', () => {
  let error: unknown;
  try {
    loadConfig({
      IOBOXX_HTTP_PORT: '70000',
      IOBOXX_LOG_LEVEL: 'loud',
      DATABASE_URL: 'not a url',
      S3_ENDPOINT: 'http://127.0.0.1:7480',
      AWS_SECRET_ACCESS_KEY: 'sekrit-value',
      IOBOXX_RUNNING_CALLS_MAX: '0',
      IOBOXX_TENANT_QUEUE_MAX: '-1',
    });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const problems = (error as ConfigError).problems.join('\n');
  for (const name of ['IOBOXX_HTTP_PORT', 'IOBOXX_LOG_LEVEL', 'DATABASE_URL', 'S3_BUCKET', 'S3_REGION', 'AWS_ACCESS_KEY_ID', 'IOBOXX_RUNNING_CALLS_MAX', 'IOBOXX_TENANT_QUEUE_MAX']) {
    expect(problems).toContain(name);
  }
  expect((error as ConfigError).message).not.toContain('sekrit-value');
});

test('token mode needs an audience, reported with the rest', () => {
  expect(() => loadConfig({ IOBOXX_OIDC_ISSUER: 'https://kc.example/realms/acme', IOBOXX_HTTP_PORT: 'x' })).toThrow(
    /IOBOXX_HTTP_PORT[\s\S]*IOBOXX_OIDC_AUDIENCE/,
  );
  const config = loadConfig({ IOBOXX_OIDC_ISSUER: 'https://kc.example/realms/acme', IOBOXX_OIDC_AUDIENCE: 'ioboxx-memory' });
  expect(config.mode).toBe('token');
});

test('printing the configuration redacts every secret', () => {
  const secrets = ['pg-password', 'direct-password', 'the-token', 'AKIDSECRET', 'aws-secret', 'hook-secret'];
  const config = loadConfig({
    DATABASE_URL: 'postgres://app:pg-password@127.0.0.1:5432/ioboxx',
    DATABASE_DIRECT_URL: 'postgres://app:direct-password@127.0.0.1:5432/ioboxx',
    IOBOXX_TOKEN: 'the-token',
    IOBOXX_OIDC_ISSUER: 'https://kc.example/realms/acme',
    IOBOXX_OIDC_AUDIENCE: 'ioboxx-memory',
    S3_ENDPOINT: 'http://127.0.0.1:7480',
    S3_REGION: 'default',
    S3_BUCKET: 'audit',
    AWS_ACCESS_KEY_ID: 'AKIDSECRET',
    AWS_SECRET_ACCESS_KEY: 'aws-secret',
    IOBOXX_KC_WEBHOOK_SECRET: 'hook-secret',
  });
  const printed = JSON.stringify(redactedConfig(config));
  for (const secret of secrets) expect(printed).not.toContain(secret);
  expect(printed).toContain('127.0.0.1:5432');
  expect(printed).toContain('audit');
});

test('an allowed origin the HTTP server cannot read is refused at start, naming the setting (it was a bare "TypeError: Invalid URL" stack once serve --http had started)', () => {
  expect(() => loadConfig({ IOBOXX_ALLOWED_ORIGINS: 'https://ok.example, http://[bad', IOBOXX_HTTP_PORT: 'abc' })).toThrow(ConfigError);
  try {
    loadConfig({ IOBOXX_ALLOWED_ORIGINS: 'https://ok.example, http://[bad', IOBOXX_HTTP_PORT: 'abc' });
  } catch (error) {
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(2);
    expect(problems.some((p) => p.startsWith('IOBOXX_ALLOWED_ORIGINS:') && p.includes('http://[bad'))).toBe(true);
  }
  expect(() => loadConfig({ IOBOXX_ALLOWED_ORIGINS: 'https://' })).toThrow(/IOBOXX_ALLOWED_ORIGINS/);
  // What the server takes stays taken: origins, bare hostnames, scheme://*.
  expect(loadConfig({ IOBOXX_ALLOWED_ORIGINS: 'https://a.example:8443, b.example, chrome-extension://*' }).http.allowedOrigins)
    .toEqual(['https://a.example:8443', 'b.example', 'chrome-extension://*']);
});

test('a bare allowed origin that no Origin header can match (a port, capitals, a space) is refused at start, not left to refuse every browser with 403', () => {
  for (const entry of ['app.example.com:3000', 'App.Example.com', 'not an origin']) {
    expect(() => loadConfig({ IOBOXX_ALLOWED_ORIGINS: `https://ok.example, ${entry}` }), entry).toThrow(/IOBOXX_ALLOWED_ORIGINS: .*is not an origin/);
  }
  expect(loadConfig({ IOBOXX_ALLOWED_ORIGINS: 'app.example.com, [::1], 10.0.0.7' }).http.allowedOrigins).toEqual(['app.example.com', '[::1]', '10.0.0.7']);
});

test('an identity setting without IOBOXX_OIDC_ISSUER is refused, not a local-mode server that checks no token (nor a bad role map left unread)', () => {
  let error: unknown;
  try {
    loadConfig({ IOBOXX_OIDC_AUDIENCE: 'ioboxx-memory', IOBOXX_ROLE_MAP: '{bad' });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).problems).toEqual([
    'IOBOXX_OIDC_ISSUER: required when IOBOXX_OIDC_AUDIENCE is set (without it IOBOXX_OIDC_AUDIENCE is ignored)',
    'IOBOXX_OIDC_ISSUER: required when IOBOXX_ROLE_MAP is set (without it IOBOXX_ROLE_MAP is ignored)',
  ]);
});

test('a setting whose primary setting is unset is refused, not ignored (the bucket without S3_ENDPOINT, the direct URL without DATABASE_URL, a token in local mode)', () => {
  let error: unknown;
  try {
    loadConfig({
      S3_BUCKET: 'audit', S3_REGION: 'eu-central-1', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's',
      DATABASE_DIRECT_URL: 'postgres://u:p@db.example.com:5432/postgres',
      IOBOXX_TOKEN: 'the-token', IOBOXX_TENANT: 'acme',
    });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).problems).toEqual([
    'S3_ENDPOINT: required when S3_BUCKET is set (without it S3_BUCKET is ignored)',
    'S3_ENDPOINT: required when S3_REGION is set (without it S3_REGION is ignored)',
    'DATABASE_URL: required when DATABASE_DIRECT_URL is set (without it DATABASE_DIRECT_URL is ignored)',
    'IOBOXX_OIDC_ISSUER: required when IOBOXX_TOKEN is set (without it IOBOXX_TOKEN is ignored)',
    'IOBOXX_OIDC_ISSUER: required when IOBOXX_TENANT is set (without it IOBOXX_TENANT is ignored)',
  ]);
  // AWS credentials alone (other AWS tools read them) stay local mode with no S3, as before.
  expect(loadConfig({ AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' }).s3).toBeUndefined();
});
