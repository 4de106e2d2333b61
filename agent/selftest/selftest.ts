/**
 * `trustroll-agent selftest`: everything a technician needs to know works
 * on this device, checked for real and without changing anything (see
 * read-only.ts): the HAL key signs, the trust store is intact, the presented
 * certificate chains to a held root, the agent runs the configuration on
 * disk and can write its folders, its link files are usable, the broker
 * link is up (link-check.ts), no command is being refused
 * (device-checks.ts), and live mutual-TLS handshakes succeed
 * (peer-checks.ts). Its own handshakes are marked (SELFTEST_SERVERNAME) so
 * the device's counters do not count them as failures.
 */
import type { AgentConfig } from '../config.ts';
import { openReadOnly } from '../read-only.ts';
import { deviceChecks } from './device-checks.ts';
import { chainCheck, keyCheck, storeCheck, trustSummary } from './local-checks.ts';
import { clientPeerChecks, serverServiceCheck, type PeerTarget } from './peer-checks.ts';
import { buildReport, type SelftestReport } from './report.ts';

/** Self-test settings. */
export interface SelftestOptions {
  /** Peers to handshake with instead of the configured probe targets (client role). */
  peers?: PeerTarget[];
  /** Per connection (ms); default 5 000. */
  timeoutMs?: number;
  now?: () => Date;
  /** The configuration file `config` was read from (the checks name it, and compare it with the running agent's). */
  configPath?: string;
}

/** Run every check of the device configured by `config`. */
export async function runSelftest(config: AgentConfig, o: SelftestOptions = {}): Promise<SelftestReport> {
  const now = o.now ?? (() => new Date());
  const timeoutMs = o.timeoutMs ?? 5_000;
  const dev = await openReadOnly(config);
  try {
    const checks = [await keyCheck(dev), storeCheck(dev), chainCheck(dev, now())];
    checks.push(...(await deviceChecks(dev, o.configPath ?? null, now(), { probe: true, timeoutMs })));
    if (config.role === 'client') {
      const peers = o.peers?.length ? o.peers : withRelay(config, config.probe?.targets ?? []);
      checks.push(...(await clientPeerChecks(dev, peers, timeoutMs)));
    } else checks.push(await serverServiceCheck(dev, now(), timeoutMs));
    const { trusts, presents } = dev.record ? trustSummary(dev.record) : { trusts: [], presents: [] };
    return buildReport({ deviceId: config.deviceId, role: config.role, at: now(), trusts, presents, checks });
  } finally {
    await dev.close();
  }
}

/**
 * A client behind a relay (config `via`) polls the relay over its own mutual
 * TLS: the relay is one of the peers handshaken with, so the channel is
 * checked even while the agent is stopped and its health file says nothing.
 */
function withRelay(config: AgentConfig, targets: readonly PeerTarget[]): PeerTarget[] {
  const via = config.via;
  if (!via || via.host === undefined || via.port === undefined) return [...targets];
  if (targets.some((t) => t.host === via.host && t.port === via.port)) return [...targets];
  return [...targets, { host: via.host, port: via.port, serverId: via.relay }];
}
