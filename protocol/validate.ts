/**
 * Schema validation for everything that crosses the wire. One Ajv instance;
 * each schema is compiled once and cached by its $id.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { ProtocolError } from './errors.ts';
import { MAX_MESSAGE_BYTES } from './limits.ts';

// No meta-schema check or code optimiser at run time: they cost the idle agent megabytes (bench/footprint.ts); test/agent/schemas-meta.test.ts checks the schemas instead.
const ajv = new Ajv({ allErrors: false, strict: true, useDefaults: false, coerceTypes: false, validateSchema: false, code: { optimize: false } });
const compiled = new Map<string, ValidateFunction>();

/** A JSON Schema with a unique $id, so it is compiled once. */
export interface IdentifiedSchema {
  readonly $id: string;
  readonly [key: string]: unknown;
}

/** Validate `value` against `schema`; throw E_SCHEMA with the first violation. */
export function assertSchema<T>(schema: IdentifiedSchema, value: unknown, what: string): asserts value is T {
  let validate = compiled.get(schema.$id);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema.$id, validate);
  }
  if (!validate(value)) {
    const e = validate.errors?.[0];
    const where = e?.instancePath || '(root)';
    throw new ProtocolError('E_SCHEMA', `${what}: ${where} ${e?.message ?? 'is invalid'}${e?.params ? ` ${JSON.stringify(e.params)}` : ''}`);
  }
}

/** Parse a raw wire message: size limit first, then JSON. */
export function parseWire(raw: Buffer | string, what: string): unknown {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > MAX_MESSAGE_BYTES) {
    throw new ProtocolError('E_PAYLOAD_TOO_LARGE', `${what} is ${size} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
  }
  try {
    return JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('E_SCHEMA', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}
