/**
 * mTLS client connections authenticated by a HAL key, the same way for every
 * backend. In-memory keys get ONE Node secure context, reused for every
 * connection; token keys get ONE terminator process (stunnel.ts), reused for
 * every connection. Nothing is rebuilt per reconnect: rebuilding engine-key
 * contexts is what fails upstream (second context, TPM session exhaustion).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { KeyStore } from '../key-store.ts';
import { HalError } from '../errors.ts';
import { StunnelTerminator, type TerminatorOptions } from './stunnel.ts';

/** Where to dial and which identity to present. */
export type TlsDialerOptions = TerminatorOptions;

/** Opens authenticated connections to one server; `close()` releases the context or terminator. */
export interface TlsDialer {
  /** 'in-process' (Node tls signs) or 'terminator' (the token signs via stunnel). */
  readonly mode: 'in-process' | 'terminator';
  /** A connected, handshaken stream to the server. */
  connect(): Promise<Duplex>;
  close(): Promise<void>;
}

function connected<T extends net.Socket>(sock: T, event: 'connect' | 'secureConnect'): Promise<T> {
  return new Promise((resolve, reject) => {
    sock.once(event, () => {
      sock.off('error', reject);
      resolve(sock);
    });
    sock.once('error', reject);
  });
}

/** Builds the dialer for key `label` of `keys`. E_HAL_TLS if the backend has no TLS capability. */
export async function createTlsDialer(keys: KeyStore, label: string, o: TlsDialerOptions): Promise<TlsDialer> {
  if (!keys.tlsKey) throw new HalError('E_HAL_TLS', `backend ${keys.backend} offers no TLS key access`);
  const ref = await keys.tlsKey(label);
  if (ref.kind === 'pem') {
    const secureContext = tls.createSecureContext({ key: ref.keyPem, cert: o.certPem, ca: o.caPem, minVersion: 'TLSv1.2' });
    return {
      mode: 'in-process',
      connect: () =>
        connected(tls.connect({ host: o.host, port: o.port, servername: o.servername, secureContext }), 'secureConnect'),
      close: async () => undefined,
    };
  }
  let term = await StunnelTerminator.start(ref, o);
  let closed = false;
  return {
    mode: 'terminator',
    async connect() {
      if (closed) throw new HalError('E_HAL_CLOSED', 'TLS dialer');
      if (!term.running) {
        const log = term.redactedLog();
        await term.close();
        term = await StunnelTerminator.start(ref, o).catch((err: unknown) => {
          throw new HalError('E_HAL_TLS', `terminator died (${log}) and did not restart`, { cause: err });
        });
      }
      const sock = await connected(net.connect(term.socketPath), 'connect');
      return sock;
    },
    async close() {
      closed = true;
      await term.close();
    },
  };
}
