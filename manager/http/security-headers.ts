/**
 * Response headers every answer carries. All: HSTS (the service speaks
 * only HTTPS) and `X-Content-Type-Options: nosniff`. API, metrics and
 * event answers: `Cache-Control: no-store` (fleet and audit data must not
 * sit in a shared or browser cache); the dashboard's files keep their own
 * revalidating cache policy. Every HTML answer: a Content-Security-Policy
 * and frame protection (`frame-ancestors 'none'`, `X-Frame-Options: DENY`);
 * pages that set a stricter policy of their own keep it.
 */
import type { FastifyReply } from 'fastify';

/** HSTS for two years, subdomains not included (the manager's name may be shared with other services). */
export const HSTS = 'max-age=63072000';

/** The policy of an HTML answer that sets none of its own (inline styles only, nothing loaded, no framing). */
export const DEFAULT_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Add the security headers to `reply` before it is sent. */
export function addSecurityHeaders(reply: FastifyReply): void {
  reply.header('strict-transport-security', HSTS);
  reply.header('x-content-type-options', 'nosniff');
  if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  const type = String(reply.getHeader('content-type') ?? '');
  if (type.startsWith('text/html')) {
    if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', DEFAULT_HTML_CSP);
    reply.header('x-frame-options', 'DENY');
    if (!reply.hasHeader('referrer-policy')) reply.header('referrer-policy', 'no-referrer');
  }
}
