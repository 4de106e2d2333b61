/**
 * One error shape for every error the server sends,
 * `{"error":{"code":"E_…","message":"…"}}`: typed manager errors with
 * their HTTP status, schema and body-parser failures (400, 413, 415),
 * router-level failures (a bad percent-encoding, a path parameter over
 * 100 characters) and anything unexpected. An unexpected error answers 500
 * E_API_INTERNAL with a reference only: its message (a database error, a stack)
 * goes to the service log under that reference, never to the client.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../protocol/log.ts';
import { withoutCode } from '../../protocol/errors.ts';
import { ManagerError, type ManagerErrorCode } from '../errors.ts';

/** HTTP status of each manager error code an API answer may carry (500 for the rest). */
export const STATUS: Partial<Record<ManagerErrorCode, number>> = {
  E_AUTH_REQUIRED: 401, E_FORBIDDEN: 403, E_CROSS_SITE: 403, E_BAD_REQUEST: 400, E_MEDIA_TYPE: 415, E_NOT_FOUND: 404,
  E_DEVICE_UNKNOWN: 404, E_ROTATION_UNKNOWN: 404,
  E_ROTATION_ACTIVE: 409, E_ROTATION_STATE: 409, E_DEVICE_DONE: 409, E_FLEET_EMPTY: 409, E_RENEWAL_NOT_LONGER: 409, E_ALGORITHM_UNVERIFIABLE: 409, E_AGENT_OUTDATED: 409, E_ROOT_SIDE: 409,
};

/** An error as the API answers it. */
export interface ErrorAnswer {
  status: number;
  code: string;
  message: string;
}

/** Map any error to its status, stable code and a message safe to show a client. */
export function errorAnswer(err: unknown, log: Logger, req: FastifyRequest): ErrorAnswer {
  if (err instanceof ManagerError) {
    const status = STATUS[err.code];
    if (status !== undefined) return { status, code: err.code, message: withoutCode(err.message) };
    return internal(err, log, req);
  }
  const fe = err as FastifyError;
  const status = fe.statusCode;
  if (fe.validation || (status !== undefined && status >= 400 && status < 500)) {
    const s = fe.validation ? 400 : status!;
    const code = s === 415 ? 'E_MEDIA_TYPE' : s === 404 ? 'E_NOT_FOUND' : 'E_BAD_REQUEST';
    return { status: s, code, message: clientMessage(fe) };
  }
  return internal(err, log, req);
}

/** Send an error answer in the one shape. */
export function sendError(reply: FastifyReply, a: ErrorAnswer): FastifyReply {
  return reply.code(a.status).type('application/json; charset=utf-8').send({ error: { code: a.code, message: a.message } });
}

/** A framework message made fit for a client: no Fastify code, no echo of a long URL. */
function clientMessage(fe: FastifyError): string {
  switch (fe.code) {
    case 'FST_ERR_BAD_URL': return 'the URL has a malformed percent-encoding';
    case 'FST_ERR_MAX_PARAM_LENGTH': return 'a path parameter is longer than 100 characters';
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return 'the body is larger than 64 KiB';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return 'the body is empty; send a JSON object ({} when there is nothing to say)';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return 'the body\'s Content-Type is not accepted; send application/json';
    default: return fe.message.replace(/\s+/g, ' ').slice(0, 300);
  }
}

function internal(err: unknown, log: Logger, req: FastifyRequest): ErrorAnswer {
  const ref = randomBytes(6).toString('hex');
  log.error('request failed', { ref, method: req.method, url: req.url.split('?')[0]!.slice(0, 200), reason: (err as Error).message, code: (err as { code?: string }).code });
  return { status: 500, code: 'E_API_INTERNAL', message: `the manager could not answer this request (reference ${ref}; the service log has the details)` };
}
