/**
 * Cross-site safety for the operator API. A browser attaches the operator's
 * client certificate to any request a page sends to the manager, so a
 * hostile page could make a "simple" cross-site request (a form post, or a
 * fetch with `text/plain` or no body, which needs no CORS preflight) that
 * acts as the operator. Every state-changing request therefore must:
 *
 * - come from the service's own origin: an `Origin` header, when present,
 *   names this service (scheme, host and port of the request), and a
 *   `Sec-Fetch-Site` header, when present, is `same-origin` (or `none`, a
 *   request the user made by hand); else 403 E_CROSS_SITE;
 * - be `Content-Type: application/json` (which a cross-site page can send
 *   only after a preflight the service never grants); else 415 E_MEDIA_TYPE;
 * - carry a JSON object as its body (not empty, not null, not an array);
 *   else 400 E_BAD_REQUEST.
 *
 * Scripts with a bearer token send neither Origin nor Sec-Fetch-Site and
 * pass as before; the dashboard sends JSON from its own origin.
 */
import type { FastifyRequest } from 'fastify';
import { ManagerError } from '../errors.ts';

/** HTTP methods that change nothing (never guarded). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True for a method that may change state. */
export function isMutating(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

/** Throw E_CROSS_SITE unless a mutating request comes from this service's own origin. */
export function requireSameOrigin(req: FastifyRequest): void {
  if (!isMutating(req.method)) return;
  const site = header(req, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new ManagerError('E_CROSS_SITE', `${req.method} refused: the browser says the request comes from another site (Sec-Fetch-Site: ${site.slice(0, 40)}); act from the dashboard itself`);
  }
  const origin = header(req, 'origin');
  if (origin === undefined) return;
  const own = `https://${(header(req, 'host') ?? '').toLowerCase()}`;
  if (origin.toLowerCase() !== own) {
    throw new ManagerError('E_CROSS_SITE', `${req.method} refused: the request comes from ${JSON.stringify(origin.slice(0, 200))}, not from this service (${own}); act from the dashboard itself`);
  }
}

/** Throw E_MEDIA_TYPE unless a mutating request declares a JSON body. */
export function requireJsonBody(req: FastifyRequest): void {
  if (!isMutating(req.method)) return;
  const type = (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ManagerError('E_MEDIA_TYPE', `${req.method} needs Content-Type: application/json with a JSON object body${type ? `, not ${JSON.stringify(type.slice(0, 80))}` : ' (none was given)'}; send {} when there is nothing to say`);
  }
}

/** Throw E_BAD_REQUEST unless a mutating request's parsed body is a JSON object. */
export function requireObjectBody(req: FastifyRequest): void {
  if (!isMutating(req.method)) return;
  const b = req.body;
  if (b === null || typeof b !== 'object' || Array.isArray(b)) {
    throw new ManagerError('E_BAD_REQUEST', `the body must be a JSON object, not ${b === null ? 'null' : Array.isArray(b) ? 'an array' : typeof b}; send {} when there is nothing to say`);
  }
}

/** One request header as a single string (the first when repeated), or undefined. */
function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
