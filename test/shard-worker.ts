/**
 * One worker of the parallel test run (test/shards.ts starts it): runs the
 * units of test files the coordinator sends over IPC, one mocha run each
 * (spec reporter, its failure list held back), and tells the coordinator
 * everything on stdout as framed JSON lines: each write to stdout or stderr
 * as it happens (synchronous on a pipe, so a crash loses nothing written
 * before it), then the unit's counts, seconds per file and failure list.
 */
import Mocha from 'mocha';
import { readFileSync } from 'node:fs';
import { format } from 'node:util';
import { FRAME, loadedMocha, timeFiles, type Frame, type Order } from './shards.ts';

const write = process.stdout.write.bind(process.stdout);
const send = (f: Frame) => write(`${FRAME}${JSON.stringify(f)}\n`);

type WriteFn = typeof process.stdout.write;
const framed = (t: 'out' | 'err'): WriteFn => ((chunk: string | Uint8Array, enc?: unknown, cb?: unknown) => {
  send({ t, s: typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8') });
  const done = typeof enc === 'function' ? enc : cb;
  if (typeof done === 'function') process.nextTick(done as () => void);
  return true;
}) as WriteFn;
process.stdout.write = framed('out');
process.stderr.write = framed('err');

/** The failure list of the last run (Base.list's text), for the coordinator's merged epilogue. */
let failureList = '';

/** The spec reporter, its epilogue (counts and failure list) left to the coordinator. */
class UnitReporter extends Mocha.reporters.Spec {
  override epilogue(): void {
    const failures = (this as unknown as { failures: Mocha.Test[] }).failures;
    if (failures.length === 0) return;
    const lines: string[] = [];
    const log = Mocha.reporters.Base.consoleLog;
    Mocha.reporters.Base.consoleLog = (...args: unknown[]) => { lines.push(format(...args)); };
    try {
      Mocha.reporters.Base.list(failures);
    } finally {
      Mocha.reporters.Base.consoleLog = log;
    }
    failureList = `${lines.join('\n')}\n`;
  }
}

/** CPU seconds of this process and its waited-for children so far (Linux /proc; 0 elsewhere). */
function cpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return 0;
  }
}

async function runUnit(files: string[]): Promise<void> {
  const cpu0 = cpuSeconds();
  failureList = '';
  const mocha = await loadedMocha(files, UnitReporter);
  const fileSeconds = new Map<string, number>();
  await new Promise<void>((resolve) => {
    const runner = mocha.run((failures) => {
      const stats = runner.stats ?? { passes: 0, failures, pending: 0 };
      send({ t: 'done', passes: stats.passes, failures: stats.failures, pending: stats.pending, fileSeconds: [...fileSeconds], cpuSeconds: cpuSeconds() - cpu0, failureList });
      resolve();
    });
    timeFiles(runner, fileSeconds);
  });
  mocha.dispose();
}

let queue = Promise.resolve();
process.on('message', (order: Order) => {
  if ('quit' in order) {
    void queue.then(() => process.exit(0));
    return;
  }
  queue = queue.then(() => runUnit(order.run)).catch((e: unknown) => {
    // A file that does not load (syntax error, missing import) fails its unit.
    process.stderr.write(`\n${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    send({ t: 'done', passes: 0, failures: 1, pending: 0, fileSeconds: [], cpuSeconds: 0, failureList: `  loading ${order.run.join(', ')} failed: ${e instanceof Error ? e.message : String(e)}\n` });
  });
});
