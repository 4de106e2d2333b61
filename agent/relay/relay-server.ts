/**
 * Server-relay (PROTOCOL.md "Who can reach whom", first and third
 * embodiments): a printer with a broker session serves the management
 * clients behind it. Those clients poll it over their own mutual TLS; the
 * peer's certificate (verified by the device PKI being rotated) names the
 * device, and only devices in `relay.for` are served.
 */
import type { Logger } from '../../protocol/log.ts';
import type { RelayHub } from './relay-hub.ts';
import type { RelayReply, RelayRequest } from './wire.ts';

/** Answers one relay request from an authenticated peer. */
export type RelayHandler = (peer: string, req: RelayRequest) => Promise<RelayReply>;

/** Turn a failure into the `error` answer the peer logs. */
export function relayError(err: unknown): RelayReply {
  return { t: 'error', code: (err as { code?: string }).code ?? 'E_AGENT_RELAY', message: (err as Error).message };
}

/** The handler a server-role relay's TLS service runs for its clients' polls and acknowledgements. */
export function relayServerHandler(hub: RelayHub, logger: Logger): RelayHandler {
  return async (peer, req) => {
    try {
      if (req.t === 'poll') {
        // A state that cannot be published now (broker away) does not hold back the commands.
        await hub.deliverState(peer, req.state).catch((err: Error) => {
          if (!hub.serves(peer)) throw err;
          logger.warn('relayed state not published', { device: peer, reason: err.message });
        });
        return { t: 'commands', ...hub.pending(peer) };
      }
      if (req.t === 'ack') {
        await hub.deliverAck(peer, req.ack);
        return { t: 'ok' };
      }
      return { t: 'error', code: 'E_AGENT_RELAY', message: `${req.t} is not a request a server-role relay answers` };
    } catch (err) {
      logger.warn('relay request refused', { device: peer, request: req.t, code: (err as { code?: string }).code, reason: (err as Error).message });
      return relayError(err);
    }
  };
}
