/**
 * Rotation of the management channel's own root (PROTOCOL.md
 * "Acknowledgements and failure" [0140-0143]): the same method, with the
 * MQTT broker as the one server and the devices (and the manager) as its
 * clients. The table is checked by the same `validateSchedule` as every
 * device-PKI schedule, so the ordering rules of claim 16 hold here too:
 *
 *   LB1 broker trusts K0 and K1 (cafile with both roots, restart)
 *   LC1 device verifies D with its link root R0, R1 with D, its new link
 *       certificate Cn with R1 and its own link key; presents Cn first and
 *       keeps the old one as fallback; trusts R0 and K1      (after LB1)
 *   LB2 broker presents its new certificate Sn          (after every LC1)
 *   LC2 device trusts only R1 and drops its old link certificate (after LB2)
 *   LB3 broker trusts only R1                   (after every LC2, last)
 *
 * Broker steps (role `server`) are carried out by the manager's broker
 * script (manager/link-rotation); device steps (role `client`) travel as
 * signed commands over the link itself, in the usual envelope, with the
 * device's usual sequence numbers and acknowledgements.
 */
import type { Prerequisite, Schedule } from './steps.ts';

const req = (step: string, scope: 'self' | 'peers'): Prerequisite => ({ step, scope, strength: 'required' });

/** The management-root rotation, as a schedule of the step graph. */
export const LINK_ROTATION: Schedule = {
  name: 'link-rotation',
  steps: [
    { id: 'LB1', role: 'server', effects: ['store-distribution', 'store-new-root'], after: [],
      doc: 'Broker trusts the new management root next to the old one (cafile with both roots; restart).' },
    { id: 'LC1', role: 'client', effects: ['store-distribution', 'store-new-root', 'install-client-cert'], after: [req('LB1', 'peers')],
      doc: 'Device verifies D with its link root, R1 with D and its new link certificate with R1; presents it first, keeps the old one as fallback.' },
    { id: 'LB2', role: 'server', effects: ['install-server-cert'], after: [req('LB1', 'self'), req('LC1', 'peers')],
      doc: 'Broker switches to its server certificate under the new root once every device trusts the new root key (restart).' },
    { id: 'LC2', role: 'client', effects: ['drop-old-roots', 'drop-old-client-cert'], after: [req('LC1', 'self'), req('LB2', 'peers')],
      doc: 'Device trusts only the new management root and drops its old link certificate.' },
    { id: 'LB3', role: 'server', effects: ['drop-old-roots'], after: [req('LB2', 'self'), req('LC2', 'peers')],
      doc: 'Broker trusts only the new management root (cafile with R1 alone; restart): the old root goes last.' },
  ],
};

/** The schedules a device accepts on its link (commands naming any other schedule go to the device-PKI agent). */
export const LINK_SCHEDULES: Readonly<Record<string, Schedule>> = { [LINK_ROTATION.name]: LINK_ROTATION };

/** True when a raw command names a link schedule (a cheap peek; the link dispatcher validates everything). */
export function isLinkCommand(raw: Buffer | string): boolean {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  if (!text.includes(LINK_ROTATION.name)) return false;
  try {
    const parsed = JSON.parse(text) as { schedule?: unknown } | null;
    return typeof parsed?.schedule === 'string' && parsed.schedule in LINK_SCHEDULES;
  } catch {
    return false;
  }
}
