/**
 * What the live TLS layer takes from the agent and the HAL, and the tiny
 * application protocol that lets a client tell "authenticated" from
 * "rejected": after an authorized handshake the server writes one greeting
 * line naming itself and the client it saw, then echoes lines.
 *
 * Why a greeting: a Node server with `rejectUnauthorized` verifies the client
 * certificate only after its side of the handshake is done and then silently
 * destroys the socket, so under TLS 1.3 the client's 'secureConnect' (and
 * even a NewSessionTicket) can arrive before a rejection. Application bytes
 * are written only after verification, by every stack, so they are the one
 * honest success signal.
 */
import { createHash } from 'node:crypto';
import type { KeyStore } from '../../hal/key-store.ts';
import type { Agent } from '../agent.ts';
import { TlsError } from './errors.ts';

/** Greeting prefix; the line is `trustroll-ok <server-id> <client-cn>\n`. */
export const GREETING = 'trustroll-ok';
/**
 * The server name (SNI) the technician's self-test sends when it only reads
 * the certificate a TLS port presents: a trustroll server counts such a
 * connection as a probe, never as a failed handshake.
 */
export const SELFTEST_SERVERNAME = 'selftest.trustroll.invalid';
/** Longest line either side accepts (bytes); longer input closes the connection. */
export const MAX_LINE = 1024;

/** Format the greeting a server writes after an authorized handshake. */
export function greetingLine(serverId: string, clientName: string): string {
  return `${GREETING} ${serverId} ${clientName.replace(/\s/g, '_') || '-'}\n`;
}

/** Parse a greeting line; null when it is not one. */
export function parseGreeting(line: string): { serverId: string; client: string } | null {
  const m = /^trustroll-ok (\S+) (\S+)$/.exec(line.trimEnd());
  return m ? { serverId: m[1]!, client: m[2]! } : null;
}

/** Short SHA-256 fingerprint of a PEM certificate, for logs and reports. */
export function shortFingerprint(pem: string): string {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, '');
  return createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex').slice(0, 16);
}

/** Hash of an agent's TLS-relevant state (anchors and identities), to skip no-op reloads. */
export function tlsStateHash(agent: Agent): string {
  const h = createHash('sha256');
  for (const a of agent.trustAnchors()) h.update(a).update('\0');
  h.update('|');
  for (const i of agent.identities()) h.update(i.cert).update('\0').update(i.keyLabel).update('\0');
  return h.digest('hex');
}

/**
 * PEM private keys by HAL label, fetched once through `KeyStore.tlsKey`.
 * Cached so a trust-store change can be applied synchronously inside the
 * agent's change notification, before the step's acknowledgement leaves the
 * device; only a key label never seen before (a re-key) needs an async fetch.
 * Keys stay in process memory and are never logged.
 */
export class TlsKeyCache {
  private readonly pems = new Map<string, string>();

  constructor(private readonly keys: KeyStore) {}

  /** The cached PEM for `label`, or undefined when it must be loaded first. */
  get(label: string): string | undefined {
    return this.pems.get(label);
  }

  /** True when every label is cached. */
  hasAll(labels: readonly string[]): boolean {
    return labels.every((l) => this.pems.has(l));
  }

  /** Fetch the labels not cached yet. E_TLS_KEY_UNSUPPORTED for token keys or a backend without tlsKey. */
  async load(labels: readonly string[]): Promise<void> {
    for (const label of labels) {
      if (this.pems.has(label)) continue;
      if (!this.keys.tlsKey) throw new TlsError('E_TLS_KEY_UNSUPPORTED', `key store "${this.keys.backend}" offers no TLS key access for "${label}"`);
      const ref = await this.keys.tlsKey(label);
      if (ref.kind !== 'pem') {
        throw new TlsError('E_TLS_KEY_UNSUPPORTED', `key "${label}" lives in a ${ref.kind} token; the in-process TLS stack cannot sign with it (use a hal/tls terminator)`);
      }
      this.pems.set(label, ref.keyPem);
    }
  }

  /** Forget keys not in `keep` (e.g. the old key after a re-key completed). */
  retain(keep: readonly string[]): void {
    for (const l of [...this.pems.keys()]) if (!keep.includes(l)) this.pems.delete(l);
  }
}

/** Splits a byte stream into lines, refusing lines longer than `max` (default MAX_LINE). */
export class LineSplitter {
  private buf = '';

  constructor(private readonly max = MAX_LINE) {}

  /** Feed a chunk; returns complete lines, or null when a line is too long. */
  push(chunk: Buffer | string): string[] | null {
    this.buf += chunk.toString();
    const lines = this.buf.split('\n');
    this.buf = lines.pop() ?? '';
    if (this.buf.length > this.max || lines.some((l) => l.length > this.max)) return null;
    return lines;
  }

  /** Bytes received after the last complete line (to hand back to the stream). */
  rest(): string {
    return this.buf;
  }
}
