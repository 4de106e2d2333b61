/**
 * A child process that hosts many simulated devices for large fleets
 * (bench/fleet.ts): each device is a real Agent with its own in-memory key
 * and record store and its own DeviceLink (MQTT session over mutual TLS),
 * exactly as in demo/mqtt-fleet.ts, but outside the manager's process, as
 * real devices are. It imports only the device side (agent, hal, protocol).
 *
 * Driven over the IPC channel by demo/agent-hosts.ts; see HostRequest for
 * the conversation. Started with `fork()`; exits when told to close or when
 * the parent goes away.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { Agent } from '../agent/agent.ts';
import { DeviceLink } from '../agent/mqtt-link.ts';
import { RecordStateStore } from '../agent/record-state-store.ts';
import type { HistoryEntry } from '../agent/state-store.ts';
import { systemClock } from '../protocol/clock.ts';
import { commandVerifier } from '../protocol/command-signature.ts';
import { createLogger, type LogLevel } from '../protocol/log.ts';
import type { Role } from '../protocol/steps.ts';
import { startCpuProfile, type CpuProfile } from './cpu-profile.ts';
import { MemoryKeyStore } from './memory-key-store.ts';
import { MemoryRecordStore } from './memory-record-store.ts';

/**
 * What the parent asks a host, in this order: init, keys, provision,
 * connect; then history or profile (a file starts a CPU profile, null
 * writes the running one there) as needed, and close. Every request is
 * answered by one HostReply with the same `id`.
 */
export type HostRequest =
  | { id: number; op: 'init'; url: string; ca: string; commandKeys: [keyId: string, spkiPem: string][]; logLevel: LogLevel; connectConcurrency: number }
  | { id: number; op: 'keys'; devices: [deviceId: string, role: Role][] }
  | { id: number; op: 'provision'; devices: HostedDevice[] }
  | { id: number; op: 'connect' }
  | { id: number; op: 'history'; deviceId: string }
  | { id: number; op: 'profile'; file: string | null }
  | { id: number; op: 'close' };

/** What a host needs to provision one device (material the factory would flash). */
export interface HostedDevice {
  deviceId: string;
  role: Role;
  root: string;
  certificate: string;
  link: { cert: string; key: string };
}

/** A host's answer: `spkis` (base64 DER) for `keys`, `history` for `history`; `error` when the request failed. */
export interface HostReply {
  id: number;
  error?: string;
  spkis?: [deviceId: string, spkiBase64: string][];
  history?: HistoryEntry[];
}

const clock = systemClock;
const keyStores = new Map<string, MemoryKeyStore>();
const devices = new Map<string, { agent: Agent; store: RecordStateStore; tls: { cert: string; key: string } }>();
const links: DeviceLink[] = [];
let profile: { run: CpuProfile; file: string } | null = null;
let settings: Extract<HostRequest, { op: 'init' }> | null = null;
let verifySignature: ReturnType<typeof commandVerifier> | null = null;

/** The init settings; a host never runs a device that would accept unsigned commands. */
function initialized(): { settings: NonNullable<typeof settings>; verifySignature: NonNullable<typeof verifySignature> } {
  if (!settings || !verifySignature) throw new Error('the host was not initialized (init first)');
  return { settings, verifySignature };
}

function logger() {
  return createLogger({ level: settings?.logLevel ?? 'error', fields: { component: 'agent-host', pid: process.pid } });
}

async function handle(req: HostRequest): Promise<Omit<HostReply, 'id'>> {
  switch (req.op) {
    case 'init': {
      settings = req;
      const keys = new Map<string, KeyObject>(req.commandKeys.map(([keyId, pem]) => [keyId, createPublicKey(pem)]));
      verifySignature = commandVerifier(keys);
      return {};
    }
    case 'keys': {
      const spkis: [string, string][] = [];
      for (const [deviceId] of req.devices) {
        const keys = new MemoryKeyStore();
        const key = await keys.create('device', 'P-256');
        keyStores.set(deviceId, keys);
        spkis.push([deviceId, key.spki.toString('base64')]);
      }
      return { spkis };
    }
    case 'provision': {
      const { verifySignature: verify } = initialized();
      const log = logger();
      for (const d of req.devices) {
        const keys = keyStores.get(d.deviceId);
        if (!keys) throw new Error(`no key was made for ${d.deviceId}`);
        const store = new RecordStateStore(new MemoryRecordStore(), d.deviceId);
        const agent = await Agent.provision(
          { deviceId: d.deviceId, role: d.role, store, keys, clock, logger: log.child({ deviceId: d.deviceId }), verifySignature: verify },
          { root: d.root, certificate: d.certificate, keyLabel: 'device' },
        );
        devices.set(d.deviceId, { agent, store, tls: d.link });
      }
      return {};
    }
    case 'connect': {
      const s = initialized().settings;
      const log = logger();
      const all = [...devices.values()];
      for (let i = 0; i < all.length; i += s.connectConcurrency) {
        await Promise.all(all.slice(i, i + s.connectConcurrency).map(async ({ agent, tls }) => {
          const link = new DeviceLink({ url: s.url, agent, tls: { ca: s.ca, ...tls }, clock, logger: log, backoff: { initialMs: 50, maxMs: 400 } });
          links.push(link);
          await link.ready(30_000);
        }));
      }
      return {};
    }
    case 'history': {
      const device = devices.get(req.deviceId);
      if (!device) throw new Error(`${req.deviceId} is not hosted here`);
      return { history: await device.store.history(100) };
    }
    case 'profile':
      if (req.file) profile = { run: await startCpuProfile(), file: req.file };
      else if (profile) {
        await profile.run.stop(profile.file);
        profile = null;
      }
      return {};
    case 'close':
      await Promise.all(links.map((l) => l.close().catch(() => undefined)));
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (req: HostRequest) => {
  handle(req).then(
    (reply) => process.send!({ id: req.id, ...reply } satisfies HostReply),
    (err: Error) => process.send!({ id: req.id, error: err.message } satisfies HostReply),
  );
});
// The parent is gone (crashed or killed): nothing to host for.
process.on('disconnect', () => process.exit(0));
