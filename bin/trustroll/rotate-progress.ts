/**
 * The progress line of `trustroll rotate`: acknowledged/total steps and who
 * holds the rotation up (the first blockers, each with its step and whether
 * it is online). On a terminal it is one line rewritten in place (carriage
 * return + clear line, no newline until `end`); elsewhere (a pipe, a log
 * file) a line is printed only when it changed, so a rotation that waits
 * for a device over a weekend does not fill the log with identical lines.
 */
import type { RotationDetail } from '../../manager/http/api-types.ts';
import type { RotationStatus } from '../../manager/rotation/rotation-status.ts';

/** A device-step that holds the rotation up. */
export interface ProgressBlocker {
  deviceId: string;
  step: string;
  /** null: presence not known. */
  online: boolean | null;
}

/** What one progress line shows. */
export interface ProgressState {
  rotationId: string;
  status: string;
  acked: number;
  total: number;
  /** Most important first (offline first, then by how much they hold up). */
  blockers: readonly ProgressBlocker[];
  /** How many blockers there are in all (more than listed when the list was cut). */
  blockersTotal?: number;
}

/** Where the line goes: process.stdout, or a test's recorder. */
export interface ProgressOutput {
  write(text: string): unknown;
  /** True on a terminal. */
  isTTY?: boolean;
  /** Terminal width; the line is cut to fit so that rewriting it in place works. */
  columns?: number;
}

/** Blockers named on the line; the rest are counted. */
const SHOWN = 2;
const CLEAR_LINE = '\r\x1b[2K';

/** The text of one progress line (no newline). */
export function progressLine(s: ProgressState): string {
  const head = `${s.rotationId}: ${s.status}, ${s.acked}/${s.total} steps acknowledged`;
  if (s.blockers.length === 0) return head;
  const named = s.blockers.slice(0, SHOWN).map((b) => `${b.deviceId} ${b.step} (${b.online === null ? 'presence unknown' : b.online ? 'online' : 'offline'})`);
  const more = Math.max(s.blockersTotal ?? s.blockers.length, s.blockers.length) - named.length;
  return `${head}; waiting for ${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

/** Renders successive progress states to `out` (see the module comment). */
export class RotateProgress {
  private last: string | null = null;
  private open = false;

  constructor(private readonly out: ProgressOutput) {}

  /** Show `s`: nothing when the line is unchanged. */
  update(s: ProgressState): void {
    const line = progressLine(s);
    if (line === this.last) return;
    this.last = line;
    if (!this.out.isTTY) {
      this.out.write(`${line}\n`);
      return;
    }
    const width = this.out.columns ?? 0;
    // Cut to the terminal width: a wrapped line could not be rewritten in place.
    const shown = width > 1 && line.length > width - 1 ? `${line.slice(0, width - 2)}…` : line;
    this.out.write(`${CLEAR_LINE}${shown}`);
    this.open = true;
  }

  /** Finish: on a terminal, end the line that was rewritten in place. */
  end(): void {
    if (this.open) this.out.write('\n');
    this.open = false;
  }
}

/** The progress of a rotation as the service's API reports it (GET /api/rotations/:id; a POST's summary has no blockers). */
export function fromDetail(d: Pick<RotationDetail, 'id' | 'status' | 'acked' | 'total'> & Partial<Pick<RotationDetail, 'blockers'>>): ProgressState {
  return { rotationId: d.id, status: d.status, acked: d.acked, total: d.total, blockers: (d.blockers ?? []).map((b) => ({ deviceId: b.deviceId, step: b.step, online: b.online })) };
}

/**
 * The progress of a rotation from the manager database (a `rotate` without
 * the service): every device-step some pending step waits for, and every
 * step in flight to a device known to be offline, ranked offline first,
 * then by how many steps each holds up.
 */
export function fromStatus(st: RotationStatus, online: (deviceId: string) => boolean | null): ProgressState {
  const holds = new Map<string, number>();
  for (const d of st.devices) {
    for (const w of d.waitingFor) holds.set(w, (holds.get(w) ?? 0) + 1);
    const flying = d.steps.find((x) => x.status === 'sent');
    if (flying && online(d.deviceId) === false && !holds.has(`${d.deviceId}:${flying.step}`)) holds.set(`${d.deviceId}:${flying.step}`, 0);
  }
  const blockers = [...holds].map(([k, n]) => {
    const at = k.lastIndexOf(':');
    const deviceId = k.slice(0, at);
    return { deviceId, step: k.slice(at + 1), online: online(deviceId), n };
  }).sort((a, b) => Number(a.online !== false) - Number(b.online !== false) || b.n - a.n || a.deviceId.localeCompare(b.deviceId));
  return {
    rotationId: st.rotation.id, status: st.rotation.status, acked: st.acked, total: st.total,
    blockers: blockers.map(({ deviceId, step, online: o }) => ({ deviceId, step, online: o })),
  };
}
