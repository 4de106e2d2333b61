/**
 * The agent configuration's types (agent.json), apart from the file that
 * reads and checks it (config.ts), so the modules config.ts uses can name
 * the type without importing it back.
 */
import type { HalConfig } from '../hal/config-schema.ts';
import type { Role } from '../protocol/steps.ts';

/** Where the device record lives. */
export type StoreConfig = { kind: 'sqlite'; path: string } | { kind: 'hal-records'; name?: string };

/** The management link: broker URL, the management PKI files, and the manager's command keys. */
export interface LinkConfig {
  url: string;
  /** Management CA (PEM file) the broker's certificate must chain to. */
  ca: string;
  /** This device's management certificate (PEM file; CN = device id). */
  cert: string;
  /** Its key: a PEM file, or `keyLabel`, a key in the HAL (a token key goes through the HAL's TLS terminator). */
  key?: string;
  keyLabel?: string;
  /** Name the broker certificate must carry when the terminator checks it (default: the URL's host). */
  serverName?: string;
  /** Manager command-signing public keys (PEM files) by key id. */
  commandKeys: Record<string, string>;
  /** Republish the retained state when the handshake counters changed, at most this often (ms); default 30 000. */
  stateIntervalMs?: number;
}

/** The agent configuration. */
export interface AgentConfig {
  deviceId: string;
  role: Role;
  hal: HalConfig;
  store: StoreConfig;
  /** MQTT link settings; optional for offline tools (init, provision, status). */
  link?: LinkConfig;
  /** Server role: where the device's mutual-TLS service listens. */
  tls?: { host: string; port: number };
  /** Client role: servers to handshake with periodically (the device's own mTLS use, and the demo's traffic). */
  probe?: { targets: { host: string; port: number; serverId: string }[]; intervalMs: number };
  /** Accept the unsafe "naive" schedule too. Only for the demo's contrast run; never on a real device. */
  allowUnsafeSchedules?: boolean;
  logLevel?: 'debug' | 'info' | 'warn' | 'error'; // the running agent's log level: `run --log-level` wins, it wins over $TRUSTROLL_LOG (run-process.ts)
  /** Persistent folder for the agent's own files (the link record and rotated link files; default: the trust store's folder; see state-paths.ts). */
  stateDir?: string;
  /** Volatile folder for the health file (tmpfs, e.g. /run/trustroll; default: a `run` folder beside the state; see state-paths.ts). */
  runtimeDir?: string;
  /** Where the running agent keeps its health file (default: `<runtimeDir>/<deviceId>.health.json`). */
  healthFile?: string;
  /** This device relays for peers that cannot reach the broker (relay topologies; see relay/). */
  relay?: RelayConfig;
  /** This device has no broker session: its commands come through the relay it names (instead of `link`). */
  via?: ViaConfig;
}

/**
 * A relay's settings: the devices it serves. A server-role relay is polled
 * by its clients; a client-role relay pushes to its servers at the
 * addresses its `probe.targets` give.
 */
export interface RelayConfig {
  for: string[];
  /** Client-role relay: push at least this often (ms); default 2 000. */
  intervalMs?: number;
}

/** A relayed device's settings. */
export interface ViaConfig {
  /** Device id of the relay (its mTLS certificate's CN). */
  relay: string;
  /** Client role: where the relay's mTLS service listens. */
  host?: string;
  port?: number;
  /** Client role: poll this often (ms); default 2 000. Server role: report the channel down after 5× this without a push. */
  pollMs?: number;
  /** Manager command-signing public keys (PEM files) by key id. */
  commandKeys: Record<string, string>;
}
