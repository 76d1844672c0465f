/**
 * memory:// URIs <-> tables. The server serves these as MCP resources and resource
 * templates; it never needs to know the tables behind them.
 */
import type { TxRecord } from '../storage/changes.js';
import type { TenantMemory } from '../tools/memory.js';

export interface ResourceTemplateDef {
  readonly name: string;
  readonly uriTemplate: string; // RFC 6570, e.g. memory://objects/{id}
  readonly title: string;
  readonly description: string;
  readonly mimeType: string;
}

export interface ResourceEntry {
  readonly uri: string;
  readonly name: string;
  readonly title?: string;
  readonly mimeType: string;
}

export interface ResourceContent {
  readonly uri: string;
  readonly mimeType: string;
  readonly text: string;
}

export interface ResourceCatalog {
  readonly templates: readonly ResourceTemplateDef[];
  /** Paged; cursor is opaque and checked (a forged or stale cursor is invalid_argument). */
  list(memory: TenantMemory, cursor?: string): Promise<{ resources: ResourceEntry[]; nextCursor?: string }>;
  /** not_found for an unknown or absent URI; invalid_argument for a malformed one. */
  read(memory: TenantMemory, uri: string): Promise<ResourceContent>;
  /**
   * The URI in the one form `read` answers with and `changedUris` names (e.g. the id
   * percent-encoded), for any URI `read` accepts; throws as read does for a URI no resource of
   * this catalog can have (subscribe: an absent one may still appear).
   */
  canonicalUri(uri: string): string;
  /** Exactly the URIs a durable transaction changed. */
  changedUris(tx: TxRecord): string[];
}
