/**
 * Numbers reaching a handler are finite. The schema validator turns query
 * text into numbers, and `Infinity`, `-Infinity` and `1e400` become ±∞,
 * which its range checks let through (and JSON's `1e400` parses to ∞ too).
 * This check runs after validation, before any handler: a non-finite or
 * unsafe (beyond ±2^53) number anywhere in the query, the path parameters
 * or the body is 400 E_BAD_REQUEST naming the field.
 */
import type { FastifyRequest } from 'fastify';
import { ManagerError } from '../errors.ts';

/** Throw E_BAD_REQUEST when the request holds a number that is not finite or not safely representable. */
export function requireFiniteNumbers(req: FastifyRequest): void {
  check(req.query, 'querystring');
  check(req.params, 'params');
  check(req.body, 'body');
}

function check(v: unknown, path: string, depth = 0): void {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || Math.abs(v) > Number.MAX_SAFE_INTEGER) throw new ManagerError('E_BAD_REQUEST', `${path} must be a finite number within ±${Number.MAX_SAFE_INTEGER}`);
    return;
  }
  if (v === null || typeof v !== 'object' || depth > 32) return;
  if (Array.isArray(v)) v.forEach((x, i) => check(x, `${path}/${i}`, depth + 1));
  else for (const [k, x] of Object.entries(v)) check(x, `${path}/${k.slice(0, 64)}`, depth + 1);
}
