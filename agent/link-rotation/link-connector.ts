/**
 * One TLS connection to the broker per attempt, presenting the link
 * material in the rotator's order: the new link certificate first and, when
 * the broker rejects it, the old one on the next attempt [0075-0076]. A
 * rejection is a TLS error (TLS 1.2: during the handshake), or a connection
 * that completed its handshake and closed before the broker sent a single
 * byte (TLS 1.3 checks the client certificate after the client's handshake
 * is done; the broker's answer to MQTT CONNECT is the first byte it sends). A broker that is down (connection refused,
 * unreachable) is not a rejection: the next attempt starts again with the
 * new certificate. The MQTT link (agent/mqtt-link.ts) uses `open` as its
 * stream factory, so its back-off, session and acknowledgements are those
 * of every other link.
 */
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from '../../protocol/log.ts';
import type { LinkTlsMaterial } from './link-rotator.ts';

/** Errors that say the broker is not there, as opposed to a TLS refusal of what the device presented. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

/** Counters for tests and the technician. */
export interface LinkConnectorStats {
  attempts: number;
  /** Attempts the broker refused in TLS (e.g. a certificate it does not trust yet). */
  refused: number;
  /** Connections made with a fallback (older) link certificate. */
  fallbacks: number;
}

/** Opens link connections with fallback between link certificates. */
export class LinkConnector {
  readonly stats: LinkConnectorStats = { attempts: 0, refused: 0, fallbacks: 0 };
  private pick = 0;
  private triedInRound = 0;

  constructor(private readonly url: string, private readonly material: () => LinkTlsMaterial[], private readonly logger: Logger) {}

  /** A new TLS socket to the broker presenting the current choice of link material. */
  open(): Duplex {
    const u = new URL(this.url);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const all = this.material();
    if (this.pick >= all.length) this.pick = 0;
    const chosen = this.pick;
    const m = all[chosen]!;
    this.stats.attempts++;
    let secured = false;
    let received = 0;
    let refused: Error | null = null;
    const socket = tlsConnect({ host, port: Number(u.port || 8883), ...(isIP(host) ? {} : { servername: host }), ca: m.ca, cert: m.cert, key: m.key, rejectUnauthorized: true });
    socket.once('secureConnect', () => { secured = true; });
    // Counting only: the MQTT client pipes this socket synchronously after `open` returns, before any byte can arrive.
    socket.on('data', (chunk: Buffer) => { received += chunk.length; });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!UNREACHABLE.has(err.code ?? '') && refused === null) refused = err;
    });
    socket.once('close', () => {
      if (refused === null && secured && received === 0) refused = new Error('the broker closed the connection after the handshake without a word (client certificate refused)');
      if (refused !== null && all.length > 1) {
        this.stats.refused++;
        this.triedInRound++;
        const next = this.triedInRound < all.length ? (chosen + 1) % all.length : 0;
        if (next === 0) this.triedInRound = 0;
        this.logger.warn('broker refused the link certificate; the next attempt presents the other one', { fallback: next, reason: (refused as Error).message });
        this.pick = next;
      } else if (secured) {
        if (chosen > 0) this.stats.fallbacks++;
        this.pick = 0;
        this.triedInRound = 0;
      } else {
        this.pick = 0;
        this.triedInRound = 0;
      }
    });
    return socket;
  }
}
