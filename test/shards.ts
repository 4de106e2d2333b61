/**
 * The parallel test run behind `npm test` (test/run.ts): the test files
 * split into units (a file, or a group of files that share a resource and
 * must run in one process one after the other), ordered longest first, and
 * handed out one at a time to JOBS worker processes (test/shard-worker.ts)
 * from one queue, so the workers balance themselves. Each unit's spec output
 * is held until the unit ends and then printed whole; the counts, the
 * failures and the slowest files are merged over all units. A worker that
 * dies is reported by name with the files it was running, counts as a
 * failure, and is replaced so that the rest of the queue still runs.
 */
import Mocha from 'mocha';
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { relative } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Options of every mocha run, serial or in a worker. */
const MOCHA_OPTIONS = { timeout: 60_000, slow: 2_000 } as const;

/**
 * A mocha run of `files` (absolute paths), loaded. Every file is loaded with
 * import(), as the programs load the code: on Node >= 20.19 mocha would
 * require() it first; tsx then compiles it and all it imports to CommonJS,
 * and a module the code imports dynamically (the agent's commands, HAL
 * backends, SQLite store and relays are imported when used) would load a
 * second time as an ES module, with classes of its own (an error thrown
 * there fails `instanceof` against the first copy).
 */
export async function loadedMocha(files: readonly string[], reporter: Mocha.MochaOptions['reporter']): Promise<Mocha> {
  const esmUtils = createRequire(import.meta.url)('mocha/lib/nodejs/esm-utils.cjs') as { requireOrImport: (file: string) => Promise<unknown> };
  esmUtils.requireOrImport = (file) => import(pathToFileURL(file).href);
  const mocha = new Mocha({ ...MOCHA_OPTIONS, reporter });
  for (const f of files) mocha.addFile(f);
  await mocha.loadFilesAsync();
  return mocha;
}

/**
 * Worker processes when neither TRUSTROLL_TEST_JOBS nor --jobs says
 * otherwise: the CI machine's 2 cores. Measured there (CI=true, 2026-12-04):
 * one process 868 s with 1.47 cores busy on average, 2 workers 786-805 s
 * with 1.91: the suite is nearly CPU-bound there (handshake loops, agent
 * processes, builds), so more workers would only add contention.
 */
export const DEFAULT_JOBS = 2;

/**
 * Files that must run in the same process, in this order: they write the
 * same fixed output folders. Selected files of a group form one unit.
 * The other fixed paths have one writer each (2026-12-04): dist/ (npm pack,
 * test/pack), cross-compile/out/node24/ and the node24-x64 addon cache
 * (test/node24), the arm64 addon cache (the image group); screenshots in
 * test/artifacts/ have distinct names. Everything else writes to its own
 * mkdtemp folder and listens on port 0 or a freePort().
 */
export const GROUPS: readonly { files: readonly string[]; why: string }[] = [
  {
    files: ['test/image/image.test.ts', 'test/image/libc-floor.test.ts', 'test/image/reproducible.test.ts', 'test/image/emulated-rotation.test.ts'],
    why: 'they build the arm64 image into cross-compile/out/arm64/ and image/out/ (test/image/support.ts builds it once per process)',
  },
];

/**
 * Seconds per file (7 s or more) on the 2-core CI machine with CI=true, run
 * alone (TRUSTROLL_TEST_JOBS=1 TRUSTROLL_TEST_SLOWEST=100, 2026-12-04); a
 * group counts its files' sum. Only the queue's order comes from here:
 * longest first, so that no long file starts last. Files not listed count as
 * UNKNOWN_SECONDS; the order is no correctness matter, so the table may lag
 * behind the suite.
 */
export const KNOWN_SECONDS: Readonly<Record<string, number>> = {
  'test/node24/node24.test.ts': 69,
  'test/demo/fleet-demo.test.ts': 50,
  'test/service/sleepers.test.ts': 49,
  'test/service/offline-wait.test.ts': 47,
  'test/service/rollback.test.ts': 38,
  'test/service/api-hardening.test.ts': 30,
  'test/dashboard/cross-site.test.ts': 14,
  'test/cli/agent-algorithm.test.ts': 37,
  'test/rotation/fleet-safety.test.ts': 32,
  'test/image/emulated-rotation.test.ts': 30,
  // Not from the CI table: alone on this machine at load 3-4 (2026-12-07), its second image build from scratch.
  'test/image/reproducible.test.ts': 50,
  'test/demo/topologies.test.ts': 30,
  'test/cli/operator-flow.test.ts': 29,
  'test/demo/rsa-fleet-demo.test.ts': 25,
  'test/pack/pack.test.ts': 25,
  'test/hal/eeprom-torn-write.test.ts': 24,
  'test/agent/selftest-failures.test.ts': 24,
  'test/faults/faults.test.ts': 24,
  'test/dashboard/dashboard.test.ts': 23,
  'test/service/service.test.ts': 21,
  'test/demo/demo.test.ts': 19,
  'test/agent/rollback.test.ts': 17,
  'test/tls/cross-stack.test.ts': 17,
  'test/service/rsa-fleet.test.ts': 17,
  'test/rotation/separate-roots.test.ts': 16,
  'test/scheduler/schedule-api.test.ts': 16,
  'test/cli/provisioning.test.ts': 16,
  'test/image/image.test.ts': 15,
  'test/tls/handshake-matrix.test.ts': 12,
  'test/agent/settings-at-start.test.ts': 12,
  'test/mqtt/link-rotation.test.ts': 12,
  'test/agent/bad-input.test.ts': 11,
  'test/typecheck.test.ts': 9,
  'test/agent/catch-up.test.ts': 9,
  'test/mqtt/broker-stats.test.ts': 8,
  'test/scheduler/scheduled-fleet.test.ts': 7,
  'test/agent/renew-cert.test.ts': 7,
  'test/cli/hints.test.ts': 7,
};
const UNKNOWN_SECONDS = 2;

/** Files run by one worker in one mocha run, with the seconds they are expected to take. */
export interface Unit { files: string[]; seconds: number }

/** The units for these files (repository-relative), longest expected first. */
export function planUnits(files: readonly string[]): Unit[] {
  const grouped = new Set<string>();
  const units: Unit[] = [];
  for (const g of GROUPS) {
    const selected = g.files.filter((f) => files.includes(f));
    if (selected.length > 1) {
      for (const f of selected) grouped.add(f);
      units.push({ files: selected, seconds: 0 });
    }
  }
  for (const f of files) if (!grouped.has(f)) units.push({ files: [f], seconds: 0 });
  for (const u of units) u.seconds = u.files.reduce((s, f) => s + (KNOWN_SECONDS[f] ?? UNKNOWN_SECONDS), 0);
  return units.sort((a, b) => b.seconds - a.seconds || a.files[0]!.localeCompare(b.files[0]!));
}

/** Seconds per file into `into`: each top-level describe, from its start to its end (its hooks included). */
export function timeFiles(runner: Mocha.Runner, into: Map<string, number>): void {
  const started = new Map<Mocha.Suite, number>();
  runner.on('suite', (suite) => { if (suite.parent?.root && suite.file) started.set(suite, Date.now()); });
  runner.on('suite end', (suite) => {
    const t = started.get(suite);
    if (t !== undefined && suite.file) into.set(suite.file, (into.get(suite.file) ?? 0) + (Date.now() - t) / 1000);
  });
}

/**
 * The ten slowest files (TRUSTROLL_TEST_SLOWEST=N: N of them, e.g. to refresh
 * KNOWN_SECONDS), for stderr (nothing for a single file); with `cpu`, the CPU
 * seconds of each file's worker and its child processes beside it.
 */
export function slowestFiles(root: string, seconds: Map<string, number>, cpu?: Map<string, number>): string {
  const slowest = [...seconds].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TRUSTROLL_TEST_SLOWEST) || 10);
  const line = ([f, s]: [string, number]) => `  ${s.toFixed(1).padStart(7)} s  ${cpu ? `cpu ${(cpu.get(f) ?? 0).toFixed(1).padStart(6)} s  ` : ''}${relative(root, f)}`;
  return slowest.length > 1 ? `\nslowest files:\n${slowest.map(line).join('\n')}\n` : '';
}

/** The one line CI reads (stdout, last line). */
export function summaryLine(passes: number, failures: number, pending: number): string {
  return `\n${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}\n`;
}

/** Marks the worker's framed lines on its stdout (see test/shard-worker.ts). */
export const FRAME = '\x1e';

/** What a worker writes: one framed JSON line per write of the unit's, and one when the unit ends. */
export type Frame =
  | { t: 'out' | 'err'; s: string }
  | { t: 'done'; passes: number; failures: number; pending: number; fileSeconds: [string, number][]; cpuSeconds: number; failureList: string };

/** What the coordinator sends a worker over IPC. */
export type Order = { run: string[] } | { quit: true };

const WORKER = fileURLToPath(new URL('./shard-worker.ts', import.meta.url));

/** One worker process and the unit it runs. */
interface Worker {
  n: number;
  child: ChildProcess;
  unit: Unit | null;
  unitStarted: number;
  busy: number;
  held: { t: 'out' | 'err'; s: string }[];
  partial: string;
  quitting: boolean;
}

/**
 * Runs the files (absolute paths; `root` for naming them) in `jobs` worker
 * processes; prints as described at the top; resolves to the exit code.
 */
export async function runParallel(root: string, files: string[], jobs: number): Promise<number> {
  const started = Date.now();
  const queue = planUnits(files.map((f) => relative(root, f)));
  const total = { passes: 0, failures: 0, pending: 0 };
  const fileSeconds = new Map<string, number>();
  const fileCpu = new Map<string, number>();
  let cpuTotal = 0;
  const failureLists: string[] = [];
  const crashes: string[] = [];
  const busy: number[] = [];
  const workers = new Set<Worker>();
  let nextWorker = 1;
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => { finish = r; });

  // The unit's output, whole; its leading blank lines (each mocha run starts with two) left out, the suites' own end with one.
  const print = (held: Worker['held']) => {
    let lead = true;
    for (const h of held) {
      if (lead && h.t === 'out' && h.s.trim() === '') continue;
      lead = false;
      (h.t === 'out' ? process.stdout : process.stderr).write(h.s);
    }
  };

  const dispatch = (w: Worker) => {
    const unit = queue.shift();
    if (!unit) {
      w.quitting = true;
      w.child.send({ quit: true } satisfies Order);
      return;
    }
    w.unit = unit;
    w.unitStarted = Date.now();
    w.child.send({ run: unit.files.map((f) => `${root}/${f}`) } satisfies Order);
  };

  const onFrame = (w: Worker, f: Frame) => {
    if (f.t !== 'done') { w.held.push(f); return; }
    print(w.held);
    w.held = [];
    total.passes += f.passes;
    total.failures += f.failures;
    total.pending += f.pending;
    for (const [file, s] of f.fileSeconds) fileSeconds.set(file, (fileSeconds.get(file) ?? 0) + s);
    // A group's CPU time is shared out over its files by their seconds.
    const unitSeconds = f.fileSeconds.reduce((sum, [, s]) => sum + s, 0);
    for (const [file, s] of f.fileSeconds) fileCpu.set(file, (fileCpu.get(file) ?? 0) + (unitSeconds > 0 ? (f.cpuSeconds * s) / unitSeconds : 0));
    cpuTotal += f.cpuSeconds;
    if (f.failureList) failureLists.push(`  in ${w.unit!.files.join(', ')}:\n${f.failureList}`);
    w.busy += (Date.now() - w.unitStarted) / 1000;
    w.unit = null;
    dispatch(w);
  };

  const onLine = (w: Worker, line: string) => {
    const at = line.indexOf(FRAME);
    if (at < 0) { w.held.push({ t: 'out', s: `${line}\n` }); return; }
    // Output of a grandchild that shares the worker's stdout may precede a frame on its line.
    if (at > 0) w.held.push({ t: 'out', s: `${line.slice(0, at)}\n` });
    let frame: Frame;
    try {
      frame = JSON.parse(line.slice(at + FRAME.length)) as Frame;
    } catch {
      w.held.push({ t: 'out', s: `${line.slice(at + FRAME.length)}\n` });
      return;
    }
    onFrame(w, frame);
  };

  const start = () => {
    const n = nextWorker++;
    const child = fork(WORKER, [], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, TRUSTROLL_TEST_WORKER: String(n), ...(process.stdout.isTTY && process.env.MOCHA_COLORS === undefined ? { MOCHA_COLORS: '1' } : {}) },
    });
    const w: Worker = { n, child, unit: null, unitStarted: 0, busy: 0, held: [], partial: '', quitting: false };
    workers.add(w);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      const lines = (w.partial + d).split('\n');
      w.partial = lines.pop()!;
      for (const line of lines) onLine(w, line);
    });
    // Only a grandchild that inherited the worker's stderr writes here (the worker frames its own).
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => { w.held.push({ t: 'err', s: d }); });
    // Its end: 'exit', then what is still in its pipes (written synchronously before it exited). Not 'close':
    // a child process a test left running with the worker's stdout or stderr would hold that off for ever.
    child.once('exit', (code, signal) => {
      const drained = (s: Readable) => (s.readableEnded || s.destroyed ? Promise.resolve() : new Promise<void>((r) => { s.once('end', r); s.once('close', r); }));
      void Promise.race([Promise.all([drained(child.stdout!), drained(child.stderr!)]), new Promise((r) => setTimeout(r, 2_000))]).then(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        ended(code, signal);
      });
    });
    const ended = (code: number | null, signal: NodeJS.Signals | null) => {
      workers.delete(w);
      if (w.partial) onLine(w, w.partial);
      busy.push(w.busy + (w.unit ? (Date.now() - w.unitStarted) / 1000 : 0));
      if (!w.quitting || code !== 0) {
        print(w.held);
        process.stdout.write('\n');
        const what = w.unit ? `while running ${w.unit.files.join(', ')}` : 'between test files';
        const msg = `test worker ${n} (pid ${child.pid}) died ${what} (${signal ? `signal ${signal}` : `exit code ${code}`}): counted as 1 failed${w.unit ? '; the tests of that unit after the last one printed did not run' : ''}`;
        crashes.push(msg);
        process.stderr.write(`\n${msg}\n`);
        total.failures += 1;
        if (queue.length > 0) dispatch(start());
      }
      if (workers.size === 0) finish();
    };
    return w;
  };

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const w of workers) w.child.kill(sig);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }

  const n = Math.max(1, Math.min(jobs, queue.length));
  process.stdout.write('\n');
  for (let i = 0; i < n; i++) dispatch(start());
  await finished;

  const wall = (Date.now() - started) / 1000;
  const out: string[] = ['', `  ${total.passes} passing (${fmtSeconds(wall)})`];
  if (total.pending) out.push(`  ${total.pending} pending`);
  if (total.failures) out.push(`  ${total.failures} failing`, '', ...failureLists, ...crashes.map((c) => `  ${c}\n`));
  process.stdout.write(`${out.join('\n')}\n`);
  process.stderr.write(slowestFiles(root, fileSeconds, fileCpu));
  process.stderr.write(`\n${busy.length} test workers (${jobs} at a time) over ${files.length} files: ${fmtSeconds(wall)} wall, busy ${busy.map((s) => fmtSeconds(s)).join(' + ')}, ${fmtSeconds(cpuTotal)} of CPU (workers and their child processes)\n`);
  process.stdout.write(summaryLine(total.passes, total.failures, total.pending));
  return total.failures > 0 ? 1 : 0;
}

function fmtSeconds(s: number): string {
  return s < 60 ? `${s.toFixed(0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
