/**
 * How the device reaches the broker over its management PKI: the CA and
 * certificate files of `link`, and the key either as a PEM file, as a HAL
 * key held in memory, or (token key) through the HAL's stunnel terminator.
 * Shared by the runtime's MQTT link and the self-test's broker probe, so
 * both connect exactly the same way.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { KeyStore } from '../hal/key-store.ts';
import { StunnelTerminator } from '../hal/tls/stunnel.ts';
import type { LinkConfig } from './config.ts';
import { AgentError } from './errors.ts';

/** TLS material for the link, or a stream factory when a terminator does the TLS. */
export interface LinkTls {
  tls: { ca: string; cert: string; key?: string };
  /** Set when the key lives in a token: plain MQTT over the terminator's local socket. */
  stream?: () => net.Socket;
  /** Stop the terminator, if one was started. */
  close(): Promise<void>;
}

/** Read a PEM file a setting names; E_AGENT_CONFIG naming the setting when it cannot be read. */
export function readPem(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentError('E_AGENT_CONFIG', `setting "${setting}": cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Prepare the link's TLS; starts a terminator for a token key (close it with `close`). */
export async function openLinkTls(link: LinkConfig, keys: KeyStore): Promise<LinkTls> {
  const tls: LinkTls['tls'] = { ca: readPem(link.ca, 'link.ca'), cert: readPem(link.cert, 'link.cert') };
  if (link.key) {
    tls.key = readPem(link.key, 'link.key');
    return { tls, close: async () => {} };
  }
  // The management key lives in the HAL: in memory it goes to Node's TLS, in a token through the terminator.
  const ref = await keys.tlsKey?.(link.keyLabel!);
  if (!ref) throw new AgentError('E_AGENT_CONFIG', `setting "link.keyLabel": the HAL has no TLS access to key "${link.keyLabel}"`);
  if (ref.kind === 'pem') {
    tls.key = ref.keyPem;
    return { tls, close: async () => {} };
  }
  const url = new URL(link.url);
  const terminator = await StunnelTerminator.start(ref, { host: url.hostname, port: Number(url.port || 8883), servername: link.serverName ?? url.hostname, certPem: tls.cert, caPem: tls.ca });
  const socketPath = terminator.socketPath;
  return { tls, stream: () => net.connect(socketPath), close: () => terminator.close() };
}
