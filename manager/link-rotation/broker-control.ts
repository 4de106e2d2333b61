/**
 * The broker's side of a management-root rotation. Mosquitto reads its
 * cafile, certfile and keyfile only at start (SIGHUP reloads neither), so
 * each broker step is: put the files in place, restart the broker, wait
 * until it accepts connections again. Devices and the manager ride out the
 * restart with their persistent sessions (clean: false, QoS 1): what is
 * queued for them waits in the broker's persistence.
 *
 * `scriptedBroker` writes the files the listener snippet of `trustroll mgmt
 * init` names (mgmt-ca.pem, broker.pem, broker-key.pem in one folder) and
 * runs the operator's restart command, e.g. `systemctl restart mosquitto`.
 * `embeddedBrokerControl` does the same for the embedded broker without a
 * restart: it swaps the TLS material and closes the open connections.
 */
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { ManagerError } from '../errors.ts';
import { writeFileAtomic } from '../pki/key-vault.ts';

/** The TLS files of a broker listener (PEM text). */
export interface BrokerTlsFiles {
  /** Every management root the broker accepts client certificates under. */
  ca: string;
  cert: string;
  key: string;
}

/** What a rotation needs from the broker. */
export interface BrokerControl {
  /** Put the listener's CA file, certificate and key in place (atomically). */
  install(files: BrokerTlsFiles): Promise<void>;
  /** Restart the broker so it reads them; resolves once it accepts connections again. */
  restart(): Promise<void>;
}

/** Resolve once host:port accepts a TCP connection; E_BROKER_CONNECT after `timeoutMs`. */
export async function waitForListener(url: string, timeoutMs: number): Promise<void> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 8883);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host, port });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new ManagerError('E_BROKER_CONNECT', `${url}: the broker does not accept connections ${timeoutMs} ms after its restart; check the restart command and the broker log`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The embedded broker (aedes in this process): a broker step swaps its TLS material and closes open connections. */
export function embeddedBrokerControl(broker: { reloadTls(tls: BrokerTlsFiles): void }): BrokerControl {
  let files: BrokerTlsFiles | null = null;
  return {
    install: async (f) => { files = f; },
    restart: async () => {
      if (files) broker.reloadTls(files);
    },
  };
}

/** A broker whose files live in `dir` and which `restartCommand` (a shell command) restarts. */
export function scriptedBroker(o: { dir: string; restartCommand: string; url: string; timeoutMs?: number }): BrokerControl {
  return {
    install: async (f) => {
      writeFileAtomic(join(o.dir, 'mgmt-ca.pem'), f.ca, 0o644);
      writeFileAtomic(join(o.dir, 'broker.pem'), f.cert, 0o644);
      writeFileAtomic(join(o.dir, 'broker-key.pem'), f.key, 0o600);
    },
    restart: async () => {
      const code = await new Promise<number>((resolve) => {
        const p = spawn('/bin/sh', ['-c', o.restartCommand], { stdio: ['ignore', 'inherit', 'inherit'] });
        p.once('error', () => resolve(127));
        p.once('exit', (c) => resolve(c ?? 1));
      });
      if (code !== 0) throw new ManagerError('E_BROKER_START', `the broker restart command "${o.restartCommand}" exited with ${code}`);
      await waitForListener(o.url, o.timeoutMs ?? 30_000);
    },
  };
}
