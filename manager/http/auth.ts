/**
 * Who is asking: an operator certificate under the operator CA (role in the
 * subject's OU, not revoked), an API token (`Authorization: Bearer`), or
 * the service's local token that the `trustroll` CLI on the same machine
 * reads from the data folder. Everything else is 401; a read-only operator
 * asking to act is 403.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { fingerprint } from '../../protocol/pem.ts';
import { ManagerError } from '../errors.ts';
import type { Me, OperatorRole } from './api-types.ts';

/** What authentication consults. */
export interface AuthSources {
  /** Fingerprints of revoked operator certificates (re-read by the caller when the file changes). */
  revoked: () => ReadonlySet<string>;
  /** Look up an API token. */
  token: (secret: string) => { name: string; role: OperatorRole } | null;
  /** The local CLI token of this service run. */
  localToken: string;
}

/** Header the local CLI names its user in (honoured only with the local token). */
export const ACTOR_HEADER = 'x-trustroll-actor';

/** An authenticated request: who, and how to tell later whether that credential still holds. */
export interface Authenticated {
  me: Me;
  /** False once the certificate or token that authenticated the request is revoked (re-checked for open connections). */
  stillValid: () => boolean;
}

/** Authenticate a request, or throw E_AUTH_REQUIRED (with the name it claimed, when it claimed one, on `err.claimed`). */
export function authenticate(req: FastifyRequest, src: AuthSources): Authenticated {
  const socket = req.raw.socket as TLSSocket;
  if (socket.authorized && typeof socket.getPeerX509Certificate === 'function') {
    const peer = socket.getPeerX509Certificate();
    if (peer) {
      const me = operatorOf(peer);
      const fp = fingerprint(peer);
      if (src.revoked().has(fp)) throw claimed(new ManagerError('E_AUTH_REQUIRED', `operator certificate of ${me?.name ?? 'unknown'} is revoked`), me?.name);
      if (me) return { me, stillValid: () => !src.revoked().has(fp) };
    }
  }
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) {
    const secret = auth.slice(7).trim();
    if (secret && secret === src.localToken) {
      const who = String(req.headers[ACTOR_HEADER] ?? 'local').replace(/[^A-Za-z0-9._@-]/g, '').slice(0, 64) || 'local';
      return { me: { name: `cli:${who}`, role: 'admin', via: 'token' }, stillValid: () => true };
    }
    const t = secret ? src.token(secret) : null;
    if (t) return { me: { name: `token:${t.name}`, role: t.role, via: 'token' }, stillValid: () => src.token(secret) !== null };
    throw new ManagerError('E_AUTH_REQUIRED', 'the bearer token is unknown or revoked');
  }
  throw new ManagerError('E_AUTH_REQUIRED', 'present an operator certificate or a bearer token');
}

/** The operator a refused credential named (for the audit of refused requests), or undefined. */
export function claimedName(err: unknown): string | undefined {
  return (err as { claimed?: string }).claimed;
}

function claimed(err: ManagerError, name: string | undefined): ManagerError {
  return name ? Object.assign(err, { claimed: name }) : err;
}

/** Name and role from an operator certificate's subject (`CN=name`, `OU=read|admin`). */
export function operatorOf(cert: X509Certificate): Me | null {
  const fields = new Map<string, string>();
  for (const line of cert.subject.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 1));
  }
  const name = fields.get('CN');
  const role = fields.get('OU');
  if (!name || (role !== 'read' && role !== 'admin')) return null;
  return { name: `operator:${name}`, role, via: 'certificate' };
}

/** Throw E_FORBIDDEN unless `me` may act. */
export function requireAdmin(me: Me): void {
  if (me.role !== 'admin') throw new ManagerError('E_FORBIDDEN', `${me.name} is read-only; ask for an admin operator certificate or token`);
}
