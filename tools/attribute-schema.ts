/**
 * JSON Schema for an object type's attributes, checked with Ajv. A schema is checked against
 * the meta-schema (and compiled, in strict mode) when the type is defined; compiled
 * validators are cached by (type, version, schema text) so the same schema text always
 * yields the same verdict: validation is a pure function and safe inside a reducer.
 * No remote $ref is ever loaded (no loadSchema), so a schema cannot reach the network.
 * `pattern` and `patternProperties` run on RE2 (re2js), not on the backtracking JS engine: a
 * tenant's schema is untrusted input, and RE2 matches in time linear in the string, so no
 * pattern can stall the process (ReDoS). RE2 has no lookaround or backreferences; a schema
 * using them is refused when it is defined.
 * Ajv evaluates a `$ref` loop that never descends into the value by recursing without end, so
 * such a schema is refused when it is defined (schema-ref-loop.ts), and a stack overflow while
 * checking is an invalid_argument, never an internal error.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import formatsModule from 'ajv-formats';
import { RE2JS } from 're2js';
import { MemoryError } from '../storage/errors.js';
import { boundJsonBytes } from './json-bytes.js';
import { findRefLoop } from './schema-ref-loop.js';

/** UTF-8 bytes of JSON of a type's schema. */
export const typeSchemaBytesMax = 32 * 1024;
export const validatorsCachedMax = 1024;
const schemaErrorsQuotedMax = 3;

type FormatsPlugin = (ajv: Ajv) => Ajv;
// ajv-formats is CommonJS with a `default` property; under NodeNext the import is its module object.
const addFormats: FormatsPlugin =
  ((formatsModule as unknown as { default?: FormatsPlugin }).default ?? (formatsModule as unknown as FormatsPlugin));

const validators = new Map<string, ValidateFunction>();

/**
 * Ajv's regex seam: it only calls `.test`, which RE2JS implements as an unanchored search,
 * like RegExp's. (`code` names it for Ajv's standalone code generation, which is not used.)
 */
const linearTimeRegExp = Object.assign((pattern: string): { test(text: string): boolean } => {
  try {
    return RE2JS.compile(pattern);
  } catch (error) {
    throw new Error(`pattern ${JSON.stringify(pattern)} is not supported (RE2 syntax, no lookaround or backreferences): ${(error as Error).message}`);
  }
}, { code: 'RE2JS.compile' });

/**
 * One Ajv for the process (building one costs ~100 ms); each compiled schema is removed from it
 * right after compiling. Strict, but `required` may name a property the schema does not
 * describe: that is valid JSON Schema (strictRequired is a lint). addUsedSchema stays on (the
 * default): without it Ajv cannot resolve `$ref: "#"` to the root of a schema with no `$id`.
 */
const ajv = new Ajv({
  strict: true, strictRequired: false, allErrors: false, validateFormats: true, code: { regExp: linearTimeRegExp },
});
addFormats(ajv);

const refLoopHint = 'reach a recursive $ref only through properties, items or another keyword that descends into the value';
const stackHint = 'break any $ref loop that does not pass through properties or items, or nest less';

/** Compile a schema (checking it first); invalid_argument with Ajv's reason if it is not a usable JSON Schema. */
export function compileAttributeSchema(schema: unknown): ValidateFunction {
  boundJsonBytes('schema', schema, 'typeSchemaBytesMax', typeSchemaBytesMax, 'split the type, or shorten its descriptions and enums');
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new MemoryError('invalid_argument', 'schema must be a JSON Schema object');
  }
  try {
    if (!ajv.validateSchema(schema)) {
      throw new MemoryError('invalid_argument', `schema is not a valid JSON Schema: ${ajv.errorsText(ajv.errors, { dataVar: 'schema' })}`);
    }
    // Before Ajv compiles it: Ajv resolves such a loop by recursing until the stack overflows.
    const loop = findRefLoop(schema as Record<string, unknown>);
    if (loop !== undefined) {
      throw new MemoryError('invalid_argument', `schema has a $ref loop that never descends into the value: ${loop.join(' -> ')}`, refLoopHint);
    }
    return ajv.compile(schema);
  } catch (error) {
    if (error instanceof MemoryError) throw error;
    if (error instanceof RangeError) {
      throw new MemoryError('invalid_argument', 'schema does not compile: it recurses without end or nests too deep (Ajv ran out of stack)', stackHint);
    }
    throw new MemoryError('invalid_argument', `schema does not compile: ${(error as Error).message}`);
  } finally {
    // Forget it at once, under its `$id` and under '' (where a schema without one is kept): the
    // registry never grows, and one tenant's schema never meets another's.
    ajv.removeSchema(schema);
    ajv.removeSchema('');
  }
}

/** Throws invalid_argument naming the first violations when attributes do not satisfy the type. */
export function checkAttributes(type: string, version: number, schema: unknown, attributes: unknown, objectId?: string): void {
  const subject = objectId === undefined ? '' : `object ${objectId}: `;
  const validate = cachedValidator(type, version, schema);
  let valid: boolean;
  try {
    valid = validate(attributes) as boolean;
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new MemoryError('invalid_argument',
      `${subject}attributes cannot be checked against type ${type} (version ${version}): checking recursed without end or too deep (out of stack)`, stackHint);
  }
  if (valid) return;
  const reasons = (validate.errors ?? []).slice(0, schemaErrorsQuotedMax)
    .map((e) => `attributes${e.instancePath} ${e.message ?? 'is invalid'}`);
  throw new MemoryError(
    'invalid_argument',
    `${subject}attributes do not satisfy type ${type} (version ${version}): ${reasons.join('; ')}`,
    'read the schema with type_get',
  );
}

function cachedValidator(type: string, version: number, schema: unknown): ValidateFunction {
  const key = `${type}\u0000${version}\u0000${JSON.stringify(schema)}`;
  let validate = validators.get(key);
  if (validate) {
    // Refresh its place: the Map's insertion order is the eviction order.
    validators.delete(key);
  } else {
    validate = compileStoredSchema(type, version, schema);
    if (validators.size >= validatorsCachedMax) validators.delete(validators.keys().next().value!);
  }
  validators.set(key, validate);
  return validate;
}

/**
 * A stored type's schema passed type_define's checks when it was defined; one stored before a
 * check was added (a $ref loop, say) fails here, on a write of the type: say which type it is.
 */
function compileStoredSchema(type: string, version: number, schema: unknown): ValidateFunction {
  try {
    return compileAttributeSchema(schema);
  } catch (error) {
    if (!(error instanceof MemoryError)) throw error;
    throw new MemoryError(error.code, `type ${type} (version ${version}) has a schema that is no longer accepted: ${error.message}`,
      `redefine the type with type_define${error.hint === undefined ? '' : `: ${error.hint}`}`);
  }
}
