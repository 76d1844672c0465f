/**
 * A `$ref` loop that never descends into the value: a chain of local `$ref`s and keywords that
 * apply to the same instance location (allOf, anyOf, oneOf, not, if/then/else, dependencies,
 * dependentSchemas) leading back to where it began. A validator evaluates such a schema forever
 * (Ajv: RangeError, maximum call stack size), on any value. A loop through properties, items
 * and the like is fine: each turn takes a smaller part of the value, which ends.
 *
 * Found statically, before Ajv compiles the schema: every schema position is visited once and
 * every edge followed once, so the work is linear in the schema's size (typeSchemaBytesMax).
 * Only refs this module can resolve are followed: `#`, `#/json/pointer` and plain-name
 * fragments, within the document or the nested `$id` resource they appear in.
 */
import { isJsonObject } from '../storage/json-object.js';

type Schema = Record<string, unknown>;

/** Keywords whose value is one subschema, applied to the same instance location or to a part of it. */
const inPlaceSchema = ['not', 'if', 'then', 'else'];
const partSchema = ['items', 'additionalItems', 'contains', 'additionalProperties', 'propertyNames', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema'];
/** Keywords whose value is an array of subschemas. */
const inPlaceSchemaList = ['allOf', 'anyOf', 'oneOf'];
const partSchemaList = ['items', 'prefixItems'];
/** Keywords whose value maps names to subschemas. */
const inPlaceSchemaMap = ['dependentSchemas', 'dependencies'];
const partSchemaMap = ['properties', 'patternProperties', 'definitions', '$defs'];

interface Node {
  readonly schema: Schema;
  /** JSON pointer of the nearest enclosing `$id` resource (the document's root is ''). */
  readonly resource: string;
  /** JSON pointers of the subschemas evaluated at the same instance location (not yet the $ref). */
  readonly inPlace: string[];
}

/** The loop's schema locations (`#/...`), first and last the same, or undefined if there is none. */
export function findRefLoop(root: Schema): string[] | undefined {
  const { nodes, anchors } = indexSchemas(root);
  const edges = new Map<string, string[]>();
  for (const [pointer, node] of nodes) {
    const target = typeof node.schema['$ref'] === 'string' ? resolveLocalRef(node.schema['$ref'], node.resource, nodes, anchors) : undefined;
    edges.set(pointer, target === undefined ? node.inPlace : [...node.inPlace, target]);
  }
  return findCycle(edges)?.map((pointer) => `#${pointer}`);
}

/**
 * Every object in a schema position, by JSON pointer, and the plain-name fragments that name
 * some of them (`$anchor`, or draft-07's `$id: "#name"`), as `resource#name` -> pointer.
 */
function indexSchemas(root: Schema): { nodes: Map<string, Node>; anchors: Map<string, string> } {
  const nodes = new Map<string, Node>();
  const anchors = new Map<string, string>();
  const pending: { schema: unknown; pointer: string; resource: string }[] = [{ schema: root, pointer: '', resource: '' }];
  // Breadth-first, in document order: the loop found first is then the one met first reading the schema.
  for (let i = 0; i < pending.length; i++) {
    const next = pending[i]!;
    const { schema, pointer } = next;
    if (!isJsonObject(schema)) continue; // booleans apply nothing further
    const s = schema as Schema;
    const id = s['$id'];
    const resource = typeof id === 'string' && !id.startsWith('#') ? pointer : next.resource;
    if (typeof id === 'string' && id.startsWith('#')) anchors.set(`${resource}#${id.slice(1)}`, pointer);
    if (typeof s['$anchor'] === 'string') anchors.set(`${resource}#${s['$anchor']}`, pointer);
    const inPlace: string[] = [];
    const visit = (child: unknown, childPointer: string, sameLocation: boolean): void => {
      pending.push({ schema: child, pointer: childPointer, resource });
      if (sameLocation) inPlace.push(childPointer);
    };
    for (const [keyword, value] of Object.entries(s)) {
      const at = `${pointer}/${escapePointer(keyword)}`;
      const inPlaceKeyword = inPlaceSchema.includes(keyword) || inPlaceSchemaList.includes(keyword) || inPlaceSchemaMap.includes(keyword);
      if (Array.isArray(value)) {
        if (inPlaceSchemaList.includes(keyword) || partSchemaList.includes(keyword)) value.forEach((v, i) => visit(v, `${at}/${i}`, inPlaceKeyword));
      } else if (inPlaceSchema.includes(keyword) || partSchema.includes(keyword)) {
        visit(value, at, inPlaceKeyword);
      } else if ((inPlaceSchemaMap.includes(keyword) || partSchemaMap.includes(keyword)) && value !== null && typeof value === 'object') {
        // `dependencies` also maps names to arrays of property names: those are not schemas.
        for (const [name, v] of Object.entries(value)) if (!Array.isArray(v)) visit(v, `${at}/${escapePointer(name)}`, inPlaceKeyword);
      }
    }
    nodes.set(pointer, { schema: s, resource, inPlace });
  }
  return { nodes, anchors };
}

function resolveLocalRef(ref: string, resource: string, nodes: ReadonlyMap<string, Node>, anchors: ReadonlyMap<string, string>): string | undefined {
  if (!ref.startsWith('#')) return undefined; // another document, or relative to an `$id`: not followed here
  let fragment: string;
  try {
    fragment = decodeURIComponent(ref.slice(1));
  } catch {
    return undefined;
  }
  const pointer = fragment === '' || fragment === '/' ? resource
    : fragment.startsWith('/') ? resource + fragment
    : anchors.get(`${resource}#${fragment}`);
  return pointer !== undefined && nodes.has(pointer) ? pointer : undefined;
}

/** A cycle in the graph (depth-first, without recursion: a schema may nest thousands deep), as the path around it. */
function findCycle(edges: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const done = new Set<string>();
  for (const start of edges.keys()) {
    if (done.has(start)) continue;
    const path: string[] = [start];
    const onPath = new Set(path);
    const nextEdge: number[] = [0];
    while (path.length > 0) {
      const here = path[path.length - 1]!;
      const out = edges.get(here) ?? [];
      const i = nextEdge[nextEdge.length - 1]!;
      if (i === out.length) {
        done.add(here);
        onPath.delete(here);
        path.pop();
        nextEdge.pop();
        continue;
      }
      nextEdge[nextEdge.length - 1] = i + 1;
      const to = out[i]!;
      if (onPath.has(to)) return [...path.slice(path.indexOf(to)), to];
      if (done.has(to)) continue;
      path.push(to);
      onPath.add(to);
      nextEdge.push(0);
    }
  }
  return undefined;
}

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
