/**
 * Test entry point (`npm test`): runs every `test/**\/*.test.ts` with mocha
 * in this process (tsx loaded via --import), then prints one line
 * `N passed, N failed` for CI. Extra arguments are glob filters.
 */
import Mocha from 'mocha';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const patterns = process.argv.slice(2);
const walk = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []);
const files = walk('test')
  .filter((f) => patterns.length === 0 || patterns.some((p) => f.includes(p)))
  .sort();

const mocha = new Mocha({ timeout: 60_000, reporter: 'spec', slow: 2_000 });
for (const f of files) mocha.addFile(join(root, f));
await mocha.loadFilesAsync();
const runner = mocha.run((failures) => {
  const stats = runner.stats ?? { passes: 0, failures, pending: 0 };
  const skipped = stats.pending ? `, ${stats.pending} skipped` : '';
  process.stdout.write(`\n${stats.passes} passed, ${stats.failures} failed${skipped}\n`);
  process.exitCode = failures > 0 || files.length === 0 ? 1 : 0;
  if (files.length === 0) process.stderr.write(`no test files matched in ${relative(process.cwd(), root) || '.'}\n`);
});
