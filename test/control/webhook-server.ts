/** The Keycloak webhook router on a real HTTP server on 127.0.0.1 (a free port), and a signed sender. */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import type { ControlPlane } from '../../storage/control/control-plane.js';
import { keycloakWebhookRouter, type KeycloakWebhookOptions } from '../../server/hooks/keycloak-webhook.js';

export interface WebhookServer {
  readonly base: string;
  post(body: string, signature?: string): Promise<Response>;
  close(): Promise<void>;
}

export async function startWebhookServer(
  control: ControlPlane,
  secret: string,
  options: Partial<KeycloakWebhookOptions> = {},
): Promise<WebhookServer> {
  const app = express();
  app.use(keycloakWebhookRouter({ control, secret, ...options }));
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve());
    server.once('error', reject);
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    post: (body, signature) =>
      fetch(`${base}/hooks/keycloak`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(signature === undefined ? {} : { 'x-keycloak-signature': signature }) },
        body,
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
