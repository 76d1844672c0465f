/**
 * Resource URIs as clients send them. Every one is bounded (resourceUriLengthMax). Those a client
 * subscribes to (resources/subscribe, 2025 era; the resourceSubscriptions of
 * subscriptions/listen, 2026 era). Change notifications name a resource by its canonical URI
 * (ResourceCatalog.canonicalUri) and are matched to subscriptions as strings, so a subscription
 * in another accepted form (`memory://objects/user:42` for `.../user%3A42`) would be accepted and
 * never fire. Each is checked as read checks it, then refused unless canonical, naming the form.
 */
import type { ResourceCatalog } from '../../resources/catalog.js';
import { MemoryError } from '../../storage/errors.js';
import { resourceSubscriptionsPerSessionMax, resourceUriLengthMax } from './limits.js';

export function checkUriLength(uri: string): void {
  if (uri.length > resourceUriLengthMax) {
    throw new MemoryError('limit_exceeded', `resource URI is ${uri.length} characters; the limit (resourceUriLengthMax) is ${resourceUriLengthMax}`);
  }
}

/** Throws the refusal for `uri` as a subscription; returns nothing when it may be subscribed to. */
export function checkSubscriptionUri(catalog: ResourceCatalog, uri: string): void {
  checkUriLength(uri);
  const canonical = catalog.canonicalUri(uri);
  if (canonical !== uri) {
    throw new MemoryError('invalid_argument', `subscribe to ${canonical}, not ${uri}: notifications name a resource in that one form`, 'use the uri that resources/read and resources/list answer with');
  }
}

/**
 * What is wrong with a subscriptions/listen request's resource URIs, or undefined; the SDK's
 * listen router checks the rest of the request.
 */
export function listenUrisProblem(catalog: ResourceCatalog, message: unknown): string | undefined {
  const uris = (message as { params?: { notifications?: { resourceSubscriptions?: unknown } } } | null)?.params?.notifications?.resourceSubscriptions;
  if (!Array.isArray(uris)) return undefined;
  if (uris.length > resourceSubscriptionsPerSessionMax) {
    return `Invalid params: ${uris.length} resourceSubscriptions; the limit (resourceSubscriptionsPerSessionMax) is ${resourceSubscriptionsPerSessionMax}`;
  }
  for (const uri of uris) {
    if (typeof uri !== 'string') continue; // the SDK's schema refuses it
    try {
      checkSubscriptionUri(catalog, uri);
    } catch (error) {
      const e = error as MemoryError;
      return `Invalid params: resourceSubscriptions: ${e.message}${e.hint === undefined ? '' : ` (${e.hint})`}`;
    }
  }
  return undefined;
}
