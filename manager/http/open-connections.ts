/**
 * Revocation ends what is open. Each request is authenticated on its own,
 * so a revoked operator certificate or API token is refused at its next
 * request; but an event stream (/api/events) stays open for hours and a
 * keep-alive connection carries requests of the credential it was opened
 * with. This keeps, per open connection, a check of the credential that
 * last authenticated on it, re-runs every check every `intervalMs`, and
 * destroys the connections whose credential no longer holds (which ends
 * their event streams; a reconnect is then refused with 401).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../../protocol/log.ts';

interface Tracked {
  name: string;
  stillValid: () => boolean;
}

/** Open connections with the credential that last authenticated on each. */
export class OpenConnections {
  private readonly sockets = new Map<Socket, Tracked>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly log: Logger, intervalMs = 1000) {
    this.timer = setInterval(() => this.sweep(), intervalMs).unref();
  }

  /** Remember that `socket` now carries requests of `name`, valid while `stillValid()`. */
  track(socket: Socket, name: string, stillValid: () => boolean): void {
    if (typeof socket.destroy !== 'function') return; // an injected request (tests) has no connection
    if (!this.sockets.has(socket)) socket.once('close', () => this.sockets.delete(socket));
    this.sockets.set(socket, { name, stillValid });
  }

  /** Destroy every connection whose credential is revoked; returns how many. */
  sweep(): number {
    const closed = new Map<string, number>();
    for (const [socket, t] of this.sockets) {
      let valid: boolean;
      try {
        valid = t.stillValid();
      } catch (err) {
        // A check that cannot run (the token table unreadable) keeps the connection: the next request is checked anyway.
        this.log.warn('could not re-check an open connection\'s credential', { actor: t.name, reason: (err as Error).message });
        continue;
      }
      if (valid) continue;
      this.sockets.delete(socket);
      socket.destroy();
      closed.set(t.name, (closed.get(t.name) ?? 0) + 1);
    }
    for (const [actor, connections] of closed) this.log.warn('credential revoked: its open connections and event streams are closed', { actor, connections });
    return [...closed.values()].reduce((a, b) => a + b, 0);
  }

  /** Stop re-checking. */
  close(): void {
    clearInterval(this.timer);
    this.sockets.clear();
  }
}
