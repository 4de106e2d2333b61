/**
 * The agent bundle (cross-compile/bundle.ts): only the agent's code and
 * dependencies (esbuild's metafile inputs: agent/, hal/, protocol/,
 * bin/trustroll-agent.ts and node_modules, none of the manager's code or
 * packages), a check that refuses anything else, and the bundle running on
 * this host's Node with the addons beside it. Fast: runs everywhere.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Metafile } from 'esbuild';
import { AGENT_ADDONS } from '../../cross-compile/addons.ts';
import { ADDON_DIR, agentNodeFlags, AGENT_BUILTIN_ALIASES, AGENT_SOURCES, AGENT_UNUSED_MODULES, bundleAgent, checkAgentInputs, MANAGER_ONLY_PACKAGES, type BundleResult } from '../../cross-compile/bundle.ts';
import { BuildError } from '../../cross-compile/errors.ts';
import { REPO_ROOT } from '../../cross-compile/paths.ts';

const meta = (...inputs: string[]): Metafile => ({ inputs: Object.fromEntries(inputs.map((i) => [i, { bytes: 1, imports: [] }])), outputs: {} });

describe('agent bundle', function () {
  this.timeout(120_000);
  let dir = '';
  let bundle: BundleResult;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-bundle-'));
    bundle = await bundleAgent(dir);
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('holds only agent, HAL and protocol code and no package only the manager uses', () => {
    assert.ok(bundle.inputs.ours.length > 20);
    for (const f of bundle.inputs.ours) assert.ok(AGENT_SOURCES.some((re) => re.test(f)), f);
    assert.ok(bundle.inputs.ours.includes('bin/trustroll-agent.ts'));
    for (const p of MANAGER_ONLY_PACKAGES) assert.ok(!bundle.inputs.packages.includes(p), p);
    // Browser re-implementations of Node modules are Node's own in the bundle.
    for (const p of Object.keys(AGENT_BUILTIN_ALIASES)) assert.ok(!bundle.inputs.packages.includes(p), p);
    assert.ok(bundle.inputs.packages.includes('mqtt-packet'), 'mqtt-packet, which imports readable-stream, is in the bundle');
    for (const p of ['mqtt', 'better-sqlite3', 'ajv']) assert.ok(bundle.inputs.packages.includes(p), p);
    // The device's command line parses with bin/command-line.ts (util.parseArgs), not Commander.
    assert.ok(!bundle.inputs.packages.includes('commander'), 'commander');
    // MQTT.js's WebSocket and SOCKS connectors and browser timers are left out (the config admits only mqtts://).
    for (const p of ['ws', 'socks', 'ip-address', 'worker-timers']) assert.ok(!bundle.inputs.packages.includes(p), p);
    for (const u of AGENT_UNUSED_MODULES) assert.ok(readFileSync(bundle.file, 'utf8').includes(`${u.what} is not part of the device agent's bundle`), u.what);
    assert.ok(existsSync(bundle.map));
    assert.match(readFileSync(bundle.file, 'utf8').slice(-200), /sourceMappingURL=trustroll-agent\.mjs\.map/);
  });

  it('refuses manager or demo code and the manager\'s packages', () => {
    assert.doesNotThrow(() => checkAgentInputs(meta('agent/agent.ts', 'node_modules/mqtt/build/index.js')));
    for (const bad of ['manager/rotation/orchestrator.ts', 'demo/fleet-demo.ts', 'test/support/forge.ts', 'node_modules/fastify/fastify.js', 'node_modules/@peculiar/x509/build/x509.cjs.js']) {
      assert.throws(() => checkAgentInputs(meta('agent/agent.ts', bad)), (e: unknown) => e instanceof BuildError && e.code === 'E_BUILD_BUNDLE', bad);
    }
  });

  it('runs on this host\'s Node with the launcher\'s flags and the addons beside it: --version, a bad config named, and the SQLite addon loaded', () => {
    mkdirSync(join(dir, ADDON_DIR), { recursive: true });
    for (const a of AGENT_ADDONS) copyFileSync(join(REPO_ROOT, 'node_modules', a.pkg, 'build', 'Release', a.file), join(dir, ADDON_DIR, a.file));
    const run = (...args: string[]) => spawnSync(process.execPath, [...agentNodeFlags(process.version), bundle.file, ...args], { encoding: 'utf8' });
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = run('--version');
    assert.equal(version.stdout.trim(), pkg.version);
    assert.equal(version.stderr, '', 'the launcher\'s flags start Node without a warning');
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ deviceId: 'p', role: 'server', hal: { keys: { backend: 'file', dir: dir }, records: { backend: 'file', dir: dir } }, store: { kind: 'sqlite' } }));
    const bad = run('run', '--config', join(dir, 'bad.json'));
    assert.equal(bad.status, 78, 'run: EX_CONFIG');
    assert.match(bad.stderr, /E_AGENT_CONFIG: setting "store/);
    // An empty SQLite file: the addon loads and the store reports what is wrong with it.
    writeFileSync(join(dir, 'empty.db'), '');
    const st = run('status', '--store', join(dir, 'empty.db'));
    assert.notEqual(st.status, 0);
    assert.match(st.stderr, /^trustroll-agent: E_[A-Z_]+: /);
    assert.doesNotMatch(st.stderr, /better_sqlite3\.node|Cannot find module|bindings/);
  });
});
