/**
 * V8 CPU profiles of one phase of a run (not its set-up), for finding where
 * a benchmark's time goes, in this process or in an agent host: open the
 * file in Chrome DevTools (Performance panel, "Load profile").
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

/** A running profile; `stop` writes it to `file`. */
export interface CpuProfile {
  stop(file: string): Promise<void>;
}

/** Start sampling this process's main thread (every 0.5 ms). */
export async function startCpuProfile(): Promise<CpuProfile> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}
