/**
 * JSON Schema for an object type's attributes, checked with Ajv: draft-07 unless the schema's
 * `$schema` names 2019-09 or 2020-12. A schema is checked against its draft's meta-schema (and
 * compiled, refusing unknown keywords) when the type is defined; compiled
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
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formatsModule from 'ajv-formats';
import { RE2JS } from 're2js';
import { MemoryError } from '../storage/errors.js';
import { isJsonObject } from '../storage/json-object.js';
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
 * multipleOf holds when value / multipleOf is within 1e-9 of a whole number. Ajv's default asks
 * for an exact whole number, which doubles cannot give a decimal: 0.07 / 0.01 is
 * 7.000000000000001, so `multipleOf: 0.01` refused 0.07, 1.15 and 19.99 as prices in cents.
 * Only accepts more than the exact check (what JSON Schema means by a decimal multiple).
 */
const multipleOfDigits = 9;

/**
 * Strict where strictness catches a mistake (an unknown keyword: `requried`, a draft's keyword
 * used in another), not where it refuses valid JSON Schema an agent writes every day:
 * `properties` or `required` without `type: "object"` (strictTypes), a tuple `items` without
 * bounds (strictTuples), `type: ["string", "number"]` (union types), `required` naming a
 * property the schema does not describe (strictRequired). None of these options changes what a
 * compiled schema accepts. addUsedSchema stays on (the default): without it Ajv cannot resolve
 * `$ref: "#"` to the root of a schema with no `$id`.
 */
const ajvOptions: Options = {
  strict: true, strictTypes: false, strictTuples: false, strictRequired: false, allowUnionTypes: true,
  allErrors: false, validateFormats: true, code: { regExp: linearTimeRegExp },
  multipleOfPrecision: multipleOfDigits,
};

/** The drafts a schema may declare in `$schema` (without its trailing `#`); none declared is draft-07. */
const draftUris = {
  'http://json-schema.org/draft-07/schema': 'draft-07',
  'https://json-schema.org/draft-07/schema': 'draft-07',
  'https://json-schema.org/draft/2019-09/schema': '2019-09',
  'https://json-schema.org/draft/2020-12/schema': '2020-12',
} as const;
type Draft = (typeof draftUris)[keyof typeof draftUris];
const draftNamesText = 'draft-07 (the default), 2019-09 or 2020-12';

/**
 * Per draft, one Ajv for the process that only checks schemas against the draft's meta-schema
 * (its validator compiled once, on first use): checking adds nothing to it.
 */
const schemaCheckers = new Map<Draft, Ajv>();

function schemaCheckerFor(draft: Draft): Ajv {
  let ajv = schemaCheckers.get(draft);
  if (ajv === undefined) {
    ajv = newAjv(draft, ajvOptions);
    schemaCheckers.set(draft, ajv);
  }
  return ajv;
}

/**
 * Each schema compiles in an Ajv of its own (~0.5 ms to make), which only its validator keeps:
 * a compile leaves state in its Ajv that removeSchema does not take back (~50 KB for a 24 KB
 * schema, for good: in one shared Ajv, 2,000 compiles, refused type_defines included, ran an
 * 80 MB heap out of memory), and nothing of one tenant's schema (its $id, nested $ids) can meet
 * another's. Cached validators are bounded by validatorsCachedMax; what V8 keeps of compiled
 * code it gives back under memory pressure.
 */
function newAjv(draft: Draft, options: Options): Ajv {
  const ajv = draft === '2020-12' ? new Ajv2020(options) : draft === '2019-09' ? new Ajv2019(options) : new Ajv(options);
  addFormats(ajv);
  return ajv;
}

/** The draft `schema` declares; invalid_argument naming the supported ones for any other `$schema`. */
function draftOf(schema: Record<string, unknown>): Draft {
  const declared = schema['$schema'];
  if (declared === undefined) return 'draft-07';
  const uri = typeof declared === 'string' ? declared.replace(/#$/, '') : undefined;
  const draft = uri === undefined ? undefined : (draftUris as Record<string, Draft | undefined>)[uri];
  if (draft === undefined) {
    throw new MemoryError('invalid_argument', `schema declares $schema ${JSON.stringify(declared)}; supported: ${draftNamesText}`,
      'leave $schema out for draft-07, or declare http://json-schema.org/draft-07/schema#, https://json-schema.org/draft/2019-09/schema or https://json-schema.org/draft/2020-12/schema');
  }
  return draft;
}

const unknownKeywordHint =
  `a keyword the schema's draft does not know: check its spelling; schemas are ${draftNamesText} ($schema says which: newer keywords such as unevaluatedProperties need 2019-09 or 2020-12); put notes in "description"`;

const refLoopHint = 'reach a recursive $ref only through properties, items or another keyword that descends into the value';
const stackHint = 'break any $ref loop that does not pass through properties or items, or nest less';

/** Compile a schema (checking it first); invalid_argument with Ajv's reason if it is not a usable JSON Schema. */
export function compileAttributeSchema(schema: unknown): ValidateFunction {
  boundJsonBytes('schema', schema, 'typeSchemaBytesMax', typeSchemaBytesMax, 'split the type, or shorten its descriptions and enums');
  if (!isJsonObject(schema)) {
    throw new MemoryError('invalid_argument', 'schema must be a JSON Schema object');
  }
  const draft = draftOf(schema as Record<string, unknown>);
  try {
    const checker = schemaCheckerFor(draft);
    if (!checker.validateSchema(schema)) {
      throw new MemoryError('invalid_argument', `schema is not a valid JSON Schema: ${checker.errorsText(checker.errors, { dataVar: 'schema' })}`);
    }
    const ajv = newAjv(draft, { ...ajvOptions, validateSchema: false }); // checked just above
    // A root $id that names a schema every Ajv holds (a meta-schema) is refused in words (Ajv says
    // "already exists"); a non-string one made Ajv throw a TypeError.
    const rootId = (schema as Record<string, unknown>)['$id'];
    if (rootId !== undefined) {
      if (typeof rootId !== 'string') throw new MemoryError('invalid_argument', 'schema $id must be a string (a URI)');
      const key = rootId.replace(/#\/?$/, '');
      if (key !== '' && (ajv.schemas[key] !== undefined || ajv.refs[key] !== undefined)) {
        throw new MemoryError('invalid_argument', `schema $id ${JSON.stringify(rootId)} is the id of a schema the server holds (a JSON Schema meta-schema)`,
          'give the schema an $id of your own, or leave $id out');
      }
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
    const message = (error as Error).message;
    throw new MemoryError('invalid_argument', `schema does not compile: ${message}`, /unknown keyword/.test(message) ? unknownKeywordHint : undefined);
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
