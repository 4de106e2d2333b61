/**
 * The relay exchange over the devices' own mutual TLS (PROTOCOL.md "Who can
 * reach whom", second and fourth embodiments). After the server's greeting
 * (tls/material.ts) either side may send request lines `relay <json>`; the
 * other answers one `relay <json>` line per request, in order. Commands and
 * acknowledgements travel as the exact strings the manager and the device
 * signed: a relay carries them and never rebuilds them.
 *
 *   poll   end client -> relay server: its state; answer `commands`
 *   ack    end client -> relay server: one acknowledgement; answer `ok` once the broker has it
 *   push   relay client -> end server: queued commands + desired; answer `result` (acks and state)
 *
 * Any request may be answered `error` with a code and a message.
 */
import { MAX_MESSAGE_BYTES } from '../../protocol/limits.ts';

/** Prefix of every relay line. */
export const RELAY_PREFIX = 'relay ';

/** Most commands one poll or push carries (the manager keeps one step in flight per device). */
export const MAX_RELAYED_COMMANDS = 8;

/** Longest relay line: a full batch of the largest commands, JSON-escaped. */
export const MAX_RELAY_LINE = 2 * (MAX_RELAYED_COMMANDS + 1) * MAX_MESSAGE_BYTES;

/** A relay request. */
export type RelayRequest =
  | { t: 'poll'; state: string }
  | { t: 'ack'; ack: string }
  | { t: 'push'; commands: string[]; desired: string | null };

/** A relay answer. */
export type RelayReply =
  | { t: 'commands'; commands: string[]; desired: string | null }
  | { t: 'ok' }
  | { t: 'result'; acks: string[]; state: string }
  | { t: 'error'; code: string; message: string };

/** Format one relay line. */
export function relayLine(msg: RelayRequest | RelayReply): string {
  return `${RELAY_PREFIX}${JSON.stringify(msg)}\n`;
}

const isStrings = (v: unknown, max: number): v is string[] => Array.isArray(v) && v.length <= max && v.every((x) => typeof x === 'string' && x.length <= MAX_MESSAGE_BYTES);
const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_MESSAGE_BYTES;

/** A JSON object, or null for anything else. */
function parseObject(json: string): Record<string, unknown> | null {
  try {
    const m = JSON.parse(json) as unknown;
    return m && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Parse a relay request line (without the prefix); null when it is not a well-formed one. */
export function parseRelayRequest(json: string): RelayRequest | null {
  const m = parseObject(json);
  if (!m) return null;
  if (m.t === 'poll' && isText(m.state)) return { t: 'poll', state: m.state };
  if (m.t === 'ack' && isText(m.ack)) return { t: 'ack', ack: m.ack };
  if (m.t === 'push' && isStrings(m.commands, MAX_RELAYED_COMMANDS) && (m.desired === null || isText(m.desired))) return { t: 'push', commands: m.commands, desired: m.desired };
  return null;
}

/** Parse a relay answer line (without the prefix); null when it is not a well-formed one. */
export function parseRelayReply(json: string): RelayReply | null {
  const m = parseObject(json);
  if (!m) return null;
  if (m.t === 'ok') return { t: 'ok' };
  if (m.t === 'commands' && isStrings(m.commands, MAX_RELAYED_COMMANDS) && (m.desired === null || isText(m.desired))) return { t: 'commands', commands: m.commands, desired: m.desired };
  if (m.t === 'result' && isStrings(m.acks, MAX_RELAYED_COMMANDS) && isText(m.state)) return { t: 'result', acks: m.acks, state: m.state };
  if (m.t === 'error' && typeof m.code === 'string' && typeof m.message === 'string') return { t: 'error', code: m.code.slice(0, 64), message: m.message.slice(0, 2048) };
  return null;
}
