/**
 * A manager transport that paces a rotation for demos and tests, so real
 * traffic meets every intermediate state.
 */
import type { ManagerTransport } from '../manager/transport/transport.ts';

/**
 * Pace the rotation so real traffic meets every intermediate state:
 * commands leave one at a time, `paceMs / 4` apart (like a technician
 * visiting one device after another), and acknowledgements are held
 * `paceMs` before the orchestrator acts on them. A safe schedule stays
 * safe under any such timing; the naive one shows its broken states.
 */
export function paced(inner: ManagerTransport, paceMs: number): ManagerTransport {
  let nextSlot = 0;
  return {
    send: (cmd) => {
      const at = Math.max(Date.now(), nextSlot);
      nextSlot = at + paceMs / 4;
      setTimeout(() => inner.send(cmd), at - Date.now()).unref();
    },
    onAck: (handler) => inner.onAck((raw) => { setTimeout(() => handler(raw), paceMs).unref(); }),
    accepted: (deviceId, seq) => inner.accepted?.(deviceId, seq),
    close: () => inner.close(),
  };
}
