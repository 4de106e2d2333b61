/**
 * Client-relay, the relay's side (PROTOCOL.md second and fourth
 * embodiments): a management client with a broker session carries the
 * commands of the printers behind it. For each printer it opens mutual TLS
 * with its own identities (new first, old as fallback) whenever commands
 * are queued and at least every `intervalMs`, pushes the queued commands
 * and the desired state, and publishes the printer's acknowledgements and
 * state unchanged. A command stays queued until its acknowledgement is on
 * the broker.
 */
import type { Logger } from '../../protocol/log.ts';
import type { DeviceTlsConnector, TlsTarget } from '../tls/device-tls-connector.ts';
import { RelayChannel } from './channel.ts';
import type { RelayHub } from './relay-hub.ts';

/** How a pushing relay is wired. */
export interface RelayPusherOptions {
  hub: RelayHub;
  connector: DeviceTlsConnector;
  /** The printers behind this relay and where their mTLS services listen. */
  targets: readonly TlsTarget[];
  intervalMs: number;
  logger: Logger;
  timeoutMs?: number;
}

/** Counters per relay. */
export interface PusherStats {
  pushes: number;
  failures: number;
  lastError: string | null;
}

/** Pushes queued commands to the servers behind a client-role relay. */
export class RelayPusher {
  readonly stats: PusherStats = { pushes: 0, failures: 0, lastError: null };
  private running = true;
  private readonly wakers = new Map<string, () => void>();
  private readonly loops: Promise<void>[] = [];
  private readonly log: Logger;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: RelayPusherOptions) {
    this.log = o.logger.child({ component: 'relay-pusher' });
    this.unsubscribe = o.hub.onCommands((id) => this.wakers.get(id)?.());
    for (const t of o.targets) this.loops.push(this.run(t));
  }

  private async run(target: TlsTarget): Promise<void> {
    while (this.running) {
      await this.pushOnce(target);
      if (!this.running) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, this.o.intervalMs);
        this.wakers.set(target.serverId, () => { clearTimeout(t); r(); });
      });
      this.wakers.delete(target.serverId);
    }
  }

  /** One exchange with one server: push what is queued, publish what comes back. Never throws. */
  async pushOnce(target: TlsTarget): Promise<void> {
    const id = target.serverId;
    const { result, socket } = await this.o.connector.open(target);
    if (!socket) return this.failed(id, `${target.host}:${target.port}: ${result.error?.code} ${result.error?.message}`);
    const channel = new RelayChannel(socket, `relayed server ${id}`);
    try {
      const reply = await channel.request({ t: 'push', ...this.o.hub.pending(id) }, this.o.timeoutMs ?? 10_000);
      if (reply.t !== 'result') return this.failed(id, reply.t === 'error' ? `${reply.code} ${reply.message}` : `answered a push with ${reply.t}`);
      for (const ack of reply.acks) await this.o.hub.deliverAck(id, ack);
      await this.o.hub.deliverState(id, reply.state);
      this.stats.pushes++;
    } catch (err) {
      this.failed(id, (err as Error).message);
    } finally {
      channel.close();
    }
  }

  private failed(id: string, reason: string): void {
    this.stats.failures++;
    this.stats.lastError = `${id}: ${reason}`;
    this.log.warn('relay push failed; trying again', { device: id, reason });
  }

  /** Stop pushing (exchanges in progress finish). */
  async close(): Promise<void> {
    this.running = false;
    this.unsubscribe();
    for (const w of this.wakers.values()) w();
    await Promise.all(this.loops);
  }
}
