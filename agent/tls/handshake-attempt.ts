/**
 * One client handshake with one identity, and an honest verdict on it.
 *
 * "Authenticated" means the server's greeting line arrived (material.ts): a
 * Node server verifies the client certificate only after its side of the
 * handshake, and under TLS 1.3 the client's 'secureConnect' always precedes
 * the server's verdict, so neither 'secureConnect' nor a session ticket
 * proves acceptance. Verdicts:
 * - `ok`: greeting from the expected server, after its certificate verified;
 * - `untrusted`: this client rejected the server certificate (path,
 *   validity, serverAuth, host name): the old client certificate would not help;
 * - `connect`: the TCP connection failed; no certificate was tried;
 * - `refused`: alert, reset or close after TCP connect but before the
 *   greeting: the server refused the certificate (the caller may fall back);
 * - `timeout`, `protocol`: no greeting in time / not a trustroll greeting.
 *
 * The server is judged on its leaf alone against this device's roots
 * (protocol/chain.ts, the same rule as the fleet's path-validation matrix),
 * with `rejectUnauthorized: false` and the check on 'secureConnect', before
 * any byte from the server is read. The caller's secure context holds only
 * key and certificate: a context holding the roots would make OpenSSL
 * auto-chain D (NewWithOld) after a new leaf, so a peer still on R0 would
 * accept it through D, which is more lenient than an embedded peer that
 * sends only its leaf, and depends on whether chain building picks D or R1.
 */
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { verifyChain } from '../../protocol/chain.ts';
import type { Logger } from '../../protocol/log.ts';
import type { TlsErrorCode } from './errors.ts';
import { LineSplitter, parseGreeting } from './material.ts';

/** Where to connect: the server's address and the device id its certificate names. */
export interface TlsTarget {
  host: string;
  port: number;
  serverId: string;
}

/** The verdict of one attempt (see the module comment). */
export type AttemptKind = 'ok' | 'refused' | 'untrusted' | 'connect' | 'timeout' | 'protocol';

/** The error code reported for each failed verdict. */
export const ATTEMPT_CODE: Record<Exclude<AttemptKind, 'ok'>, TlsErrorCode> = {
  refused: 'E_TLS_REJECTED', untrusted: 'E_TLS_SERVER_UNTRUSTED', connect: 'E_TLS_CONNECT', timeout: 'E_TLS_TIMEOUT', protocol: 'E_TLS_PROTOCOL',
};

/** What one attempt produced; `socket` is open (paused, after the greeting) only when `kind` is ok. */
export interface AttemptOutcome {
  kind: AttemptKind;
  message: string;
  socket: tls.TLSSocket | null;
  protocol: string | null;
  ms: number;
}

/** Inputs of one attempt. */
export interface AttemptOptions {
  target: TlsTarget;
  /** Key and certificate of the identity presented (no roots, see above). */
  context: tls.SecureContext;
  /** This device's roots, for the server certificate. */
  anchors: readonly X509Certificate[];
  now: Date;
  timeoutMs: number;
  log: Logger;
}

/** Why the server's leaf is not acceptable to this device, or null when it is. */
function untrusted(sock: tls.TLSSocket, o: AttemptOptions): string | null {
  // getPeerCertificate() first: on Node 20 it returns {} once getPeerX509Certificate() was called.
  const peer = sock.getPeerCertificate();
  if (!peer?.raw) return 'the server presented no certificate';
  const path = verifyChain(new X509Certificate(peer.raw), o.anchors, o.now, 'server');
  if (!path.ok) return `server certificate rejected: ${path.reason}`;
  const name = tls.checkServerIdentity(o.target.serverId, peer);
  return name ? `server certificate rejected: ${name.message}` : null;
}

/** Run one handshake; never rejects, never outlives `timeoutMs`. */
export function attemptHandshake(o: AttemptOptions): Promise<AttemptOutcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let tcp = false;
    let verified = false;
    let settled = false;
    let leftover = '';
    const lines = new LineSplitter();
    const { host, port, serverId } = o.target;
    const sock = tls.connect({ host, port, servername: serverId, secureContext: o.context, rejectUnauthorized: false });
    const finish = (kind: AttemptKind, message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.removeAllListeners('data').removeAllListeners('end').removeAllListeners('close');
      if (kind === 'ok') {
        sock.pause();
        if (leftover) sock.unshift(Buffer.from(leftover));
      } else sock.destroy();
      resolve({ kind, message, socket: kind === 'ok' ? sock : null, protocol: sock.getProtocol() ?? null, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout', `no server greeting within ${o.timeoutMs} ms`), o.timeoutMs);
    sock.once('connect', () => (tcp = true));
    sock.once('secureConnect', () => {
      const why = untrusted(sock, o);
      if (why) finish('untrusted', why);
      else verified = true;
    });
    sock.on('error', (err: Error & { code?: string }) => {
      if (settled) return void o.log.debug('tls socket error after result', { code: err.code });
      if (!tcp) finish('connect', err.message);
      else finish('refused', err.code ? `${err.code}: ${err.message}` : err.message);
    });
    const closed = () => finish(tcp ? 'refused' : 'connect', 'connection closed before the server greeting');
    sock.on('end', closed);
    sock.on('close', closed);
    sock.on('data', (chunk: Buffer) => {
      const got = lines.push(chunk);
      if (got === null) return finish('protocol', 'greeting line too long');
      if (got.length === 0) return;
      if (!verified) return finish('untrusted', 'data before the server certificate was verified');
      const greeting = parseGreeting(got[0]!);
      if (!greeting) return finish('protocol', 'the server did not send a trustroll greeting');
      if (greeting.serverId !== serverId) return finish('protocol', `the server greeted as ${greeting.serverId}, expected ${serverId}`);
      leftover = got.slice(1).map((l) => `${l}\n`).join('') + lines.rest();
      finish('ok', 'authenticated');
    });
  });
}
