/**
 * How the device reaches the broker over its management PKI: the CA and
 * certificate files of `link`, and the key either as a PEM file, as a HAL
 * key held in memory, or (token key) through the HAL's stunnel terminator.
 * Shared by the runtime's MQTT link and the self-test's broker probe, so
 * both connect exactly the same way.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
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

const bad = (setting: string, path: string, what: string, fix: string) =>
  new AgentError('E_AGENT_CONFIG', `setting "${setting}": ${path} ${what}; ${fix}`);

/** The PEM certificates in a file's text (a CA file may hold several). */
function certificatesIn(text: string, setting: string, path: string, fix: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw bad(setting, path, 'holds no PEM certificate', fix);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw bad(setting, path, 'holds a certificate block that does not parse as X.509', fix);
    }
  });
}

const spkiDer = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });

/** The link's files, parsed and matched (see checkLinkFiles). */
export interface CheckedLink {
  ca: string;
  cert: string;
  /** The PEM key (file `link.key`); absent for `link.keyLabel`. */
  key?: string;
  /** The certificate's public key, for matching a HAL key (`link.keyLabel`). */
  certSpki: Buffer;
  commandKeys: Map<string, KeyObject>;
}

/**
 * Check every file the link names before anything listens or connects:
 * `link.ca` parses as certificates, `link.cert` parses and is issued by one
 * of them, `link.key` is a private key matching `link.cert`, each
 * `link.commandKeys` entry is a public key. `rotated`: the CA and
 * certificate of the link record, in force instead of the configured files
 * after a management-root rotation. Errors are E_AGENT_CONFIG naming the
 * setting and the fix; nothing is created or changed.
 */
export function checkLinkFiles(link: LinkConfig, rotated: { ca: string; cert: string; path: string } | null = null): CheckedLink {
  const fromMgmt = `give the file "trustroll mgmt device" wrote for this device`;
  // After a management-root rotation the link record (agent/link-rotation/link-store.ts) holds the CA and certificate in force.
  const [caAt, certAt] = rotated ? [rotated.path, rotated.path] : [link.ca, link.cert];
  const ca = rotated?.ca ?? readPem(link.ca, 'link.ca');
  const cas = certificatesIn(ca, 'link.ca', caAt, `${fromMgmt} (ca.pem)`);
  const cert = rotated?.cert ?? readPem(link.cert, 'link.cert');
  const [leaf] = certificatesIn(cert, 'link.cert', certAt, `${fromMgmt} (device.pem)`);
  if (!cas.some((c) => leaf!.checkIssued(c) && leaf!.verify(c.publicKey))) {
    throw bad('link.cert', certAt, `(${leaf!.subject.replace(/\n/g, ', ')}) is not issued by the CA in "link.ca" (${caAt})`, 'give the device certificate and the CA of the same management PKI');
  }
  const certSpki = spkiDer(leaf!.publicKey);
  let key: string | undefined;
  if (link.key !== undefined) {
    key = readPem(link.key, 'link.key');
    if (key.trim() === '') throw bad('link.key', link.key, 'is empty', `${fromMgmt} (device.key)`);
    let priv: KeyObject;
    try {
      priv = createPrivateKey(key);
    } catch {
      const hint = /BEGIN CERTIFICATE/.test(key) ? 'holds a certificate, not a private key' : 'holds no readable private key (PEM PKCS#8 or SEC1)';
      throw bad('link.key', link.key, hint, `${fromMgmt} (device.key)`);
    }
    if (!spkiDer(createPublicKey(priv)).equals(certSpki)) {
      throw bad('link.key', link.key, `does not match the certificate in "link.cert" (${certAt})`, 'give the key and certificate of the same device');
    }
  }
  const commandKeys = readCommandKeys(link.commandKeys, 'link.commandKeys');
  return { ca, cert, ...(key !== undefined ? { key } : {}), certSpki, commandKeys };
}

/** Read the manager's command-signing public keys a setting (`link.commandKeys`, `via.commandKeys`) names. */
export function readCommandKeys(files: Record<string, string>, setting: string): Map<string, KeyObject> {
  const commandKeys = new Map<string, KeyObject>();
  for (const [id, file] of Object.entries(files)) {
    const pem = readPem(file, `${setting}.${id}`);
    try {
      const k = createPublicKey(pem);
      if (k.asymmetricKeyType !== 'ec') throw new Error('not EC');
      commandKeys.set(id, k);
    } catch {
      throw bad(`${setting}.${id}`, file, 'holds no EC public key (PEM)', 'give the manager\'s command key file from "trustroll mgmt device" (command-key.pem)');
    }
  }
  return commandKeys;
}

/** Prepare the link's TLS; starts a terminator for a token key (close it with `close`). */
export async function openLinkTls(link: LinkConfig, keys: KeyStore, checked: CheckedLink = checkLinkFiles(link)): Promise<LinkTls> {
  const tls: LinkTls['tls'] = { ca: checked.ca, cert: checked.cert };
  if (checked.key !== undefined) {
    tls.key = checked.key;
    return { tls, close: async () => {} };
  }
  // The management key lives in the HAL: in memory it goes to Node's TLS, in a token through the terminator.
  const info = await keys.get(link.keyLabel!);
  if (!info) throw new AgentError('E_AGENT_CONFIG', `setting "link.keyLabel": the HAL has no key "${link.keyLabel}"`);
  if (!info.spki.equals(checked.certSpki)) throw new AgentError('E_AGENT_CONFIG', `setting "link.keyLabel": HAL key "${link.keyLabel}" does not match the certificate in "link.cert" (${link.cert}); give the label of the key the management certificate was issued for`);
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
