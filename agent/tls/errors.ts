/**
 * Failures of the device's live mutual-TLS layer (the server-role service,
 * the client-role connector and the cross-stack checker). They never travel
 * in an acknowledgement: they describe one connection or the local TLS
 * setup. Codes are stable, prefixed `E_TLS_`, never renamed or reused.
 */

/** TLS error codes with the action to take. */
export const TLS_ERRORS = {
  E_TLS_KEY_UNSUPPORTED: 'The key store cannot hand this key to the in-process TLS stack (no tlsKey capability, or the key lives in a token); serve it through a terminator (hal/tls) instead.',
  E_TLS_ROLE: 'The TLS component was given an agent of the other mTLS role (a server service needs a server-role agent, a connector a client-role agent); fix the wiring.',
  E_TLS_CONNECT: 'The TCP connection to the peer could not be opened (refused, unreachable); check that the peer service runs and the address is right. No certificate was tried.',
  E_TLS_SERVER_UNTRUSTED: 'This device rejected the server certificate (it does not chain to a root this device trusts, has the wrong name, or is outside its validity); a rotation step reached the server before this client trusted the new root.',
  E_TLS_REJECTED: 'The server refused every client certificate this device holds (handshake alert, or the connection closed before the server greeted us); the server does not trust the root that issued them.',
  E_TLS_TIMEOUT: 'The handshake or the server greeting did not arrive in time; check the peer and the network. The connection was torn down.',
  E_TLS_PROTOCOL: 'The peer completed TLS but did not speak the trustroll greeting, or named another device; check that the address points at the right service.',
  E_TLS_CLOSED: 'The TLS component was used after close().',
  E_TLS_TOOL: 'An external TLS tool (openssl, gnutls-serv/gnutls-cli) is missing, could not start, or did not become ready in time; install it or raise the timeout.',
} as const;

/** A stable TLS error code. */
export type TlsErrorCode = keyof typeof TLS_ERRORS;

/** A typed TLS error with a code programs can match; `cause` keeps the stack's own error. */
export class TlsError extends Error {
  readonly code: TlsErrorCode;
  constructor(code: TlsErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(`${code}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TlsError';
    this.code = code;
  }

  /** The action text documented for this code. */
  get hint(): string {
    return TLS_ERRORS[this.code];
  }
}

/** True when `err` is a TlsError, optionally with the given code. */
export function isTlsError(err: unknown, code?: TlsErrorCode): err is TlsError {
  return err instanceof TlsError && (code === undefined || err.code === code);
}
