/**
 * Time comes in through this interface so that no logic reads the wall
 * clock: tests drive a manual clock, production passes the system clock.
 */

/** Current time source. */
export interface Clock {
  now(): Date;
}

/** Timer source (setTimeout/clearTimeout), injected like the clock. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. */
export const systemClock: Clock = { now: () => new Date() };

/** The real timers; unref'd so a pending retry never keeps a process alive on its own. */
export const systemTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A clock that moves only when told to; for tests and simulations. */
export class ManualClock implements Clock {
  private t: number;
  constructor(start: Date) {
    this.t = start.getTime();
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(date: Date): void {
    this.t = date.getTime();
  }
}
