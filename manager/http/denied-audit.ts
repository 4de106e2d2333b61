/**
 * Refused requests in the audit log: every 401, 403 and 415 the API sends
 * (no or a revoked credential, a read-only operator asking to act, a
 * cross-site request, a body that is not JSON) is recorded as `http.denied`
 * with who asked (the operator, token, or the name a revoked certificate
 * carries; `anonymous` otherwise), the method and route, the code and why.
 *
 * The API faces the internet, so a flood of refused requests must not
 * flood the audit log: each remote address gets `perMinute` entries a
 * minute; past that, refusals are counted and one `http.denied.suppressed`
 * entry per address says how many were not recorded one by one.
 */
import type { AuditInput } from '../audit/audit-log.ts';

/** What one refused request was. */
export interface Denial {
  actor: string;
  method: string;
  /** The path without its query (truncated to 200 characters). */
  route: string;
  status: number;
  code: string;
  reason: string;
  remote: string;
}

/** Records refusals into the audit log, at most `perMinute` per remote address and minute. */
export class DeniedAudit {
  private window = 0;
  private readonly seen = new Map<string, number>();

  constructor(private readonly audit: (e: AuditInput) => void, private readonly now: () => number, private readonly perMinute = 120) {}

  /** Record one refusal (or count it, past the address's budget). */
  record(d: Denial): void {
    this.roll();
    const n = (this.seen.get(d.remote) ?? 0) + 1;
    this.seen.set(d.remote, n);
    if (n > this.perMinute) return;
    this.audit({
      actor: d.actor, action: 'http.denied', code: d.code,
      detail: { method: d.method, route: d.route.slice(0, 200), status: d.status, reason: d.reason.slice(0, 500), remote: d.remote },
    });
  }

  /** Write the suppressed counts of the minute that ended (also called at shutdown). */
  flush(): void {
    for (const [remote, n] of this.seen) {
      if (n > this.perMinute) this.audit({ actor: 'manager', action: 'http.denied.suppressed', code: null, detail: { remote, refused: n, recorded: this.perMinute, minuteStart: new Date(this.window).toISOString() } });
    }
    this.seen.clear();
  }

  private roll(): void {
    const minute = Math.floor(this.now() / 60_000) * 60_000;
    if (minute === this.window) return;
    if (this.window !== 0) this.flush();
    this.window = minute;
  }
}
