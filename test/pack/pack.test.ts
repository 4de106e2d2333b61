/**
 * The npm package runs built JavaScript: `npm pack` (prepack builds dist/)
 * carries dist/ with type declarations and no TypeScript sources; installed
 * into an empty folder with production dependencies only (no tsx), both
 * commands work: a CA, a device key and CSR, enrollment, provisioning into
 * the SQLite trust store, and the device's status.
 *
 * better-sqlite3 would compile for minutes on this 2-core machine: when the
 * version npm resolves is the one `npm ci` built here, prebuild-install is
 * handed that build as a local prebuild (same source, same Node ABI);
 * otherwise it compiles. pkcs11js compiles (seconds).
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function sh(command: string, args: string[], opts: SpawnSyncOptions = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 10 * 60_000, maxBuffer: 64 << 20, ...opts });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('npm package (npm pack, installed with production dependencies only)', function () {
  this.timeout(15 * 60_000);
  let dir = '';
  let files: string[] = [];
  let app = '';

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-pack-'));
    const packed = sh('npm', ['pack', '--pack-destination', dir, '--json', '--silent'], { cwd: REPO });
    assert.equal(packed.status, 0, packed.stderr);
    const info = (JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[])[0]!;
    files = info.files.map((f) => f.path);
    const tarball = join(dir, info.filename);

    app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'trustroll-pack-test', private: true, allowScripts: { 'better-sqlite3': true, pkcs11js: true } }));
    const env: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' };
    const built = join(REPO, 'node_modules', 'better-sqlite3');
    const version = (JSON.parse(readFileSync(join(built, 'package.json'), 'utf8')) as { version: string }).version;
    const node = join(built, 'build', 'Release', 'better_sqlite3.node');
    if (existsSync(node)) {
      const prebuilds = join(dir, 'prebuilds');
      mkdirSync(join(prebuilds, 'pkg', 'build', 'Release'), { recursive: true });
      writeFileSync(join(prebuilds, 'pkg', 'build', 'Release', 'better_sqlite3.node'), readFileSync(node));
      const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
      assert.equal(sh('tar', ['-czf', join(prebuilds, name), '-C', join(prebuilds, 'pkg'), 'build']).status, 0);
      env.npm_config_better_sqlite3_local_prebuilds = prebuilds;
    }
    const inst = sh('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: app, env });
    assert.equal(inst.status, 0, inst.stderr.slice(-3000));
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('carries built JavaScript with declarations and launchers, no TypeScript sources, tests or build tools', () => {
    for (const f of ['bin/trustroll.mjs', 'bin/trustroll-agent.mjs', 'dist/bin/trustroll.js', 'dist/bin/trustroll-agent.js', 'dist/agent/agent.js', 'dist/agent/agent.d.ts',
      'dist/protocol/steps.d.ts', 'dist/manager/dashboard/index.html', 'dist/manager/ca/leaf-worker-boot.mjs', 'dist/agent-config.schema.json', 'package.json', 'README.md']) {
      assert.ok(files.includes(f), `package has ${f}`);
    }
    const sources = files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    assert.deepEqual(sources, []);
    assert.deepEqual(files.filter((f) => /^(test|bench|cross-compile|image|\.ci)\//.test(f)), []);
  });

  it('installs without tsx and runs both commands from dist/: CA, device key and CSR, enrollment, provisioning, status', () => {
    const pkg = join(app, 'node_modules', 'trustroll');
    assert.ok(existsSync(join(pkg, 'dist', 'bin', 'trustroll-agent.js')));
    assert.equal(existsSync(join(app, 'node_modules', 'tsx')), false, 'tsx is a development dependency');
    assert.equal(existsSync(join(app, 'node_modules', 'esbuild')), false);
    const bin = (name: string, ...args: string[]) => sh(join(app, 'node_modules', '.bin', name), args, { cwd: app });
    const pkgVersion = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

    const v = bin('trustroll-agent', '--version');
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), pkgVersion);
    const help = bin('trustroll', '--help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /serve/);

    const data = join(app, 'mgr');
    const root = bin('trustroll', 'ca', 'init', '--data', data, '--subject', 'CN=Pack Test Root,O=trustroll');
    assert.equal(root.status, 0, root.stderr);
    writeFileSync(join(app, 'root.pem'), root.stdout);
    const dev = join(app, 'dev');
    mkdirSync(dev);
    const config = join(app, 'agent.json');
    writeFileSync(config, JSON.stringify({
      deviceId: 'printer-pack', role: 'server',
      hal: { keys: { backend: 'file', dir: join(dev, 'keys') }, records: { backend: 'file', dir: join(dev, 'records') } },
      store: { kind: 'sqlite', path: join(dev, 'trust-store.db') },
    }));
    const csr = bin('trustroll-agent', 'init', '--config', config);
    assert.equal(csr.status, 0, csr.stderr);
    assert.match(csr.stdout, /BEGIN CERTIFICATE REQUEST/);
    writeFileSync(join(app, 'dev.csr'), csr.stdout);
    const cert = bin('trustroll', 'enroll', '--data', data, '--id', 'printer-pack', '--role', 'server', '--csr', join(app, 'dev.csr'));
    assert.equal(cert.status, 0, cert.stderr);
    writeFileSync(join(app, 'dev.pem'), cert.stdout);
    const prov = bin('trustroll-agent', 'provision', '--config', config, '--root', join(app, 'root.pem'), '--cert', join(app, 'dev.pem'));
    assert.equal(prov.status, 0, prov.stderr);
    const st = bin('trustroll-agent', 'status', '--config', config, '--json');
    assert.equal(st.status, 0, st.stderr);
    const s = JSON.parse(st.stdout) as { deviceId: string; trust: unknown[]; hal?: { ok: boolean } };
    assert.equal(s.deviceId, 'printer-pack');
    assert.equal(s.trust.length, 1);
    assert.equal(s.hal?.ok, true);

    // A configuration that is wrong exits 78 (EX_CONFIG): its unit does not restart it (image/README.md, exit codes).
    const bad = bin('trustroll-agent', 'run', '--config', join(app, 'root.pem'));
    assert.equal(bad.status, 78);
    assert.match(bad.stderr, /E_AGENT_CONFIG/);
  });
});
