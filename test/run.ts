/**
 * Test entry point (`npm test`): runs every `test/**\/*.test.ts` with mocha
 * (tsx loaded via --import) and prints one last line `N passed, N failed`
 * (`, N skipped` when any) for CI, after the ten slowest files with their
 * seconds (stderr; hooks included). Extra arguments are path filters.
 *
 * The files run in 2 worker processes at a time (test/shards.ts: one queue,
 * longest files first, files that share an output folder in one worker;
 * each file's spec output printed whole when it ends; counts, failures and
 * slowest files merged; a worker that dies counts as a failure).
 * `TRUSTROLL_TEST_JOBS=N` or `--jobs N` sets the number of workers; with 1
 * (or a single file) everything runs in this process, one mocha run.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative } from 'node:path';
import { DEFAULT_JOBS, loadedMocha, runParallel, slowestFiles, summaryLine, timeFiles } from './shards.ts';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
let jobsArg = process.env.TRUSTROLL_TEST_JOBS;
const patterns: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--jobs' || a === '-j') jobsArg = args[++i];
  else if (a.startsWith('--jobs=')) jobsArg = a.slice('--jobs='.length);
  else patterns.push(a);
}
const jobs = jobsArg === undefined || jobsArg === '' ? DEFAULT_JOBS : Number(jobsArg);
if (!Number.isInteger(jobs) || jobs < 1) {
  process.stderr.write(`test jobs must be a whole number of at least 1 (TRUSTROLL_TEST_JOBS or --jobs), not ${JSON.stringify(jobsArg)}\n`);
  process.exit(2);
}

const walk = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []);
const files = walk('test')
  .filter((f) => patterns.length === 0 || patterns.some((p) => f.includes(p)))
  .sort()
  .map((f) => join(root, f));

if (files.length === 0) {
  process.stderr.write(`no test files matched in ${relative(process.cwd(), root) || '.'}\n`);
  process.stdout.write(summaryLine(0, 0, 0));
  process.exitCode = 1;
} else if (jobs > 1 && files.length > 1) {
  process.exitCode = await runParallel(root, files, jobs);
} else {
  const mocha = await loadedMocha(files, 'spec');
  const fileSeconds = new Map<string, number>();
  const runner = mocha.run((failures) => {
    process.stderr.write(slowestFiles(root, fileSeconds));
    const stats = runner.stats ?? { passes: 0, failures, pending: 0 };
    process.stdout.write(summaryLine(stats.passes, stats.failures, stats.pending));
    process.exitCode = failures > 0 ? 1 : 0;
  });
  timeFiles(runner, fileSeconds);
}
