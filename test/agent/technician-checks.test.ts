/**
 * The technician's checks as functions: how a refused command is judged
 * against the last applied step and the configuration (fail, warn, ok), the
 * command printed for each kind of permission problem, which folders count,
 * and the health file's own rules (volatile folder, no rewrite when nothing
 * changed, a reused pid is not the agent).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configDigest } from '../../agent/config-digest.ts';
import type { AgentConfig } from '../../agent/config.ts';
import { processAlive, procStartOf, readHealth } from '../../agent/health-file.ts';
import { HealthReporter } from '../../agent/health-reporter.ts';
import { UplinkState } from '../../agent/uplink.ts';
import type { KeyStore } from '../../hal/key-store.ts';
import { systemClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { RefusedCommand } from '../../agent/refusals.ts';
import { refusalCheck } from '../../agent/selftest/agent-checks.ts';
import { fixCommand } from '../../agent/selftest/permission-check.ts';
import { runtimeDirOf, statePaths } from '../../agent/state-paths.ts';

const config: AgentConfig = {
  deviceId: 'printer-9', role: 'server',
  hal: { keys: { backend: 'file', dir: '/var/lib/trustroll/keys' }, records: { backend: 'file', dir: '/var/lib/trustroll/records' } },
  store: { kind: 'hal-records' },
  link: { url: 'mqtts://broker:8883', ca: '/etc/trustroll/link/ca.pem', cert: '/var/lib/trustroll/link/device.pem', key: '/var/lib/trustroll/link/device.key', commandKeys: { 'manager-1': '/etc/trustroll/link/command-key.pem' } },
  runtimeDir: '/run/trustroll',
};
const disk = configDigest(config, '/etc/trustroll/agent.json');
const refusal = (over: Partial<RefusedCommand> = {}): RefusedCommand => ({
  v: 1, at: '2026-01-01T10:00:00.000Z', rotationId: 'rot-1', seq: 4, step: 'P1', code: 'E_SIGNATURE',
  message: 'command seq 4 step P1 for printer-9 is signed by unknown key "cmd-ab12"', keyId: 'cmd-ab12', configSha256: disk.sha256, ...over,
});
const applied = (at: string) => [{ seq: 3, rotationId: 'rot-0', step: 'P5', storeHash: 'x'.repeat(64), at }];

describe('technician checks (functions)', () => {
  it('a refusal newer than the last applied step, under the configuration on disk, fails and names the key id to use', () => {
    const c = refusalCheck(config, '/etc/trustroll/agent.json', disk, refusal(), applied('2026-01-01T09:00:00.000Z'));
    assert.equal(c.status, 'fail');
    assert.equal(c.code, 'E_SIGNATURE');
    assert.match(c.action!, /command key id "cmd-ab12", but link\.commandKeys in \/etc\/trustroll\/agent\.json names "manager-1": rename the entry "manager-1" to "cmd-ab12"/);
  });

  it('a refusal under an earlier configuration warns; one followed by an applied step is history; none is ok', () => {
    assert.equal(refusalCheck(config, null, disk, refusal({ configSha256: 'f'.repeat(64) }), []).status, 'warn');
    const old = refusalCheck(config, null, disk, refusal(), applied('2026-01-01T11:00:00.000Z'));
    assert.equal(old.status, 'ok');
    assert.match(old.message, /a later one was applied/);
    assert.equal(refusalCheck(config, null, disk, null, []).status, 'ok');
    assert.equal(refusalCheck({ ...config, link: undefined }, null, disk, null, []).status, 'skipped');
  });

  it('each permission problem gets the command that fixes it', () => {
    const user = { uid: 999, gid: 998, name: 'trustroll' };
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-fix-'));
    try {
      assert.equal(fixCommand({ path: dir, setting: 'hal.records.dir', error: 'EACCES' }, user), `chown -R trustroll:998 '${dir}' && chmod -R u+rwX '${dir}'`);
      assert.equal(fixCommand({ path: dir, setting: 'hal.records.dir', error: 'EPERM' }, user), `chattr -i '${dir}'`);
      assert.match(fixCommand({ path: dir, setting: 'hal.records.dir', error: 'EROFS' }, user), /^mount -o remount,rw '\/[^']*'$/);
      assert.equal(fixCommand({ path: '/var/lib/x', setting: 'runtimeDir', error: 'ENOENT' }, user), "install -d -o 999 -g 998 -m 0700 '/var/lib/x'");
      assert.equal(fixCommand({ path: "/it's", setting: 'x', error: 'EACCES' }, { ...user, name: '999' }), "chown -R 999:998 '/it'\\''s' && chmod -R u+rwX '/it'\\''s'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the folders that count: state, keys, link record, and the runtime folder (volatile) for the health file', () => {
    assert.deepEqual(statePaths(config).map((p) => [p.path, p.setting, p.volatile]), [
      ['/var/lib/trustroll/records', 'hal.records.dir', false],
      ['/var/lib/trustroll/keys', 'hal.keys.dir', false],
      ['/var/lib/trustroll/link', 'stateDir', false],
      ['/run/trustroll', 'runtimeDir', true],
    ]);
    assert.equal(runtimeDirOf({ ...config, runtimeDir: undefined }), '/var/lib/trustroll/run', 'development default: beside the state');
    assert.equal(runtimeDirOf({ ...config, runtimeDir: undefined, store: { kind: 'sqlite', path: '/data/dev/trust.db' } }), '/data/dev/run');
  });

  it('the health file is written at start and on change only: an idle agent rewrites nothing', async function () {
    this.timeout(20_000);
    const dir = mkdtempSync(join(tmpdir(), 'trustroll-health-'));
    const cfg: AgentConfig = { ...config, hal: { keys: { backend: 'file', dir: join(dir, 'keys') }, records: { backend: 'file', dir: join(dir, 'records') } }, link: undefined, runtimeDir: join(dir, 'run') };
    const path = join(dir, 'run', 'printer-9.health.json');
    const link = new UplinkState();
    const keys = { backend: 'file', health: async () => ({ ok: true, backend: 'file', detail: 'ok' }) } as unknown as KeyStore;
    const r = await HealthReporter.start({
      path, config: cfg, configPath: null, url: 'mqtts://broker:8883', link, keys, tls: () => null, refused: () => ({ count: 0, last: null }), tlsPort: null, clock: systemClock, logger: createLogger({ level: 'error', sink: () => undefined }),
    });
    try {
      const first = statSync(path);
      await new Promise((res) => setTimeout(res, 2_500));
      const idle = statSync(path);
      assert.equal(idle.ino, first.ino, 'not replaced while nothing changed');
      assert.equal(idle.mtimeMs, first.mtimeMs);
      link.up(new Date());
      await new Promise((res) => setTimeout(res, 300));
      assert.notEqual(statSync(path).ino, first.ino, 'replaced (temp + rename) when the link came up');
      const v = readHealth(path, new Date());
      assert.equal(v.state, 'running');
      assert.equal(v.state === 'running' && v.health.link?.connected, true);
      assert.equal((statSync(path).mode & 0o777), 0o600);
    } finally {
      await r.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a process is the agent only with the start time it recorded (a reused pid is not)', () => {
    const mine = procStartOf(process.pid);
    assert.ok(mine, '/proc is readable here');
    assert.equal(processAlive(process.pid, mine), true);
    assert.equal(processAlive(process.pid, String(Number(mine) + 1)), true, 'a tick off (qemu-user computes its own) is the same process');
    assert.equal(processAlive(process.pid, String(Number(mine) + 1_000)), false, 'ten seconds off: another process with the pid');
    assert.equal(processAlive(process.pid, null), true);
    assert.equal(processAlive(process.pid, '0'), true, 'no start time recorded: no evidence');
    assert.ok(statSync('/proc').isDirectory());
  });
});
