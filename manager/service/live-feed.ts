/**
 * The service's live events (GET /api/events), coalesced: changes are
 * noted as they happen and sent at most once per interval and kind, the
 * fleet's counts with the devices that changed (at most 100 named), and the
 * open rotation's summary when it changed.
 */
import type { FleetPage, LiveEvent, RotationSummary } from '../http/api-types.ts';

/** Where the feed's events come from and go. */
export interface LiveFeedOptions {
  /** Coalescing interval (ms). */
  intervalMs: number;
  emit: (e: LiveEvent) => void;
  counts: () => FleetPage['counts'];
  /** The summary of the loaded rotation, or null when none is loaded. */
  rotation: () => RotationSummary | null;
}

/** Coalesces fleet and rotation changes into live events. */
export class LiveFeed {
  private readonly changedDevices = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private rotationDirty = false;
  private closed = false;

  constructor(private readonly o: LiveFeedOptions) {}

  /** Devices changed: the fleet counts go out at the next flush, naming them. */
  noteDevices(ids: readonly string[]): void {
    for (const id of ids) if (this.changedDevices.size < 100) this.changedDevices.add(id);
    this.schedule();
  }

  /** The rotation changed: its summary goes out at the next flush. */
  noteRotation(): void {
    this.rotationDirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => this.flush(), this.o.intervalMs);
  }

  private flush(): void {
    this.timer = null;
    if (this.closed) return;
    this.o.emit({ type: 'fleet', counts: this.o.counts(), changed: [...this.changedDevices] });
    this.changedDevices.clear();
    const rotation = this.rotationDirty ? this.o.rotation() : null;
    if (rotation) this.o.emit({ type: 'rotation', rotation });
    this.rotationDirty = false;
  }

  /** Nothing more is sent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
