/**
 * The agent's process lifecycle as the image installs it (issue 20, item
 * 8): the systemd unit waits for READY=1 and has a watchdog, does not
 * restart after the exit codes `run` uses for "a person must act"
 * (agent/run-process.ts) and passes systemd-analyze verify; the SysV init
 * script's supervisor, run for real with a stand-in agent, keeps its log
 * under LOG_MAX_KB with one old copy, restarts after 75 and stops after 78.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_EXIT } from '../../agent/run-process.ts';
import { REPO_ROOT } from '../../cross-compile/paths.ts';

const FILES = join(REPO_ROOT, 'image', 'files');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The unit's `Key=value` lines (all sections), values by key. */
function directives(unit: string): Map<string, string> {
  return new Map(unit.split('\n').map((l) => /^([A-Za-z]+)=(.*)$/.exec(l.trim())).filter((m) => m !== null).map((m) => [m[1]!, m[2]!]));
}

describe('agent lifecycle in the image: unit and init script', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-lifecycle-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('unit: Type=notify with a watchdog, no restart after 2/77/78, the state mount required, reload is SIGHUP; systemd-analyze verify', function () {
    const text = readFileSync(join(FILES, 'trustroll-agent.service'), 'utf8');
    const d = directives(text);
    assert.equal(d.get('Type'), 'notify');
    assert.equal(d.get('NotifyAccess'), 'all', 'systemd-notify is a child of the agent');
    assert.ok(Number(d.get('WatchdogSec')) >= 10, 'a watchdog of at least 10 s');
    assert.equal(d.get('RequiresMountsFor'), '/var/lib/trustroll');
    assert.equal(d.get('ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.deepEqual(d.get('RestartPreventExitStatus')!.split(' ').map(Number).sort(), [RUN_EXIT.usage, RUN_EXIT.noperm, RUN_EXIT.config].sort());
    assert.equal(d.get('Restart'), 'on-failure');
    if (spawnSync('systemd-analyze', ['--version']).error) this.skip();
    const unit = join(dir, 'trustroll-agent.service');
    writeFileSync(unit, text.replace('ExecStart=/opt/trustroll/bin/trustroll-agent', `ExecStart=${process.execPath}`));
    const v = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.doesNotMatch(v.stderr, /trustroll-agent\.service.*(Unknown|Invalid|Failed|ignoring)/i);
  });

  /** Run the init script's supervisor with `agent` (a sh body) standing in for the agent. */
  function supervise(name: string, agent: string, env: Record<string, string> = {}) {
    const daemon = join(dir, `${name}.sh`);
    writeFileSync(daemon, `#!/bin/sh\necho start >>"${join(dir, `${name}.starts`)}"\n${agent}\n`);
    chmodSync(daemon, 0o755);
    const log = join(dir, `${name}.log`);
    const p = spawn('sh', [join(FILES, 'trustroll-agent.init'), 'supervise'], { stdio: 'ignore', env: { PATH: process.env.PATH, DAEMON: daemon, CONFIG: '/nonexistent', LOG: log, RESTART_DELAY: '0', ...env } });
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    const starts = () => (existsSync(join(dir, `${name}.starts`)) ? readFileSync(join(dir, `${name}.starts`), 'utf8').split('\n').filter(Boolean).length : 0);
    return { p, exited, log, starts };
  }

  it('init script: the log stays under LOG_MAX_KB while the agent writes, with exactly one old copy', async () => {
    // 150 lines of about 100 bytes a second: 15 kB/s against a 16 kB limit checked every second.
    const s = supervise('chatty', `while :; do i=0; while [ $i -lt 15 ]; do echo '{"level":"info","msg":"${'x'.repeat(70)}"}'; i=$((i+1)); done; sleep 0.1; done`, { LOG_MAX_KB: '16', LOG_CHECK_S: '1' });
    try {
      let biggest = 0;
      for (let i = 0; i < 40; i++) {
        await sleep(100);
        if (existsSync(s.log)) biggest = Math.max(biggest, statSync(s.log).size);
      }
      assert.ok(existsSync(`${s.log}.1`), 'the old copy');
      assert.ok(!existsSync(`${s.log}.2`), 'one old copy only');
      assert.ok(biggest <= 16 * 1024 + 20 * 1024, `the log reached ${biggest} bytes (limit 16 kB, checked every second)`);
      assert.ok(statSync(`${s.log}.1`).size > 16 * 1024, 'the copy holds what was rotated');
    } finally {
      s.p.kill('SIGTERM');
      assert.equal(await s.exited, 0, 'the supervisor stops on SIGTERM');
    }
  });

  it('init script: exit 75 is restarted, exit 78 stops the supervisor with a line naming it', async () => {
    const temp = supervise('tempfail', 'sleep 0.2; exit 75');
    await sleep(1_500);
    assert.ok(temp.starts() >= 3, `restarted after 75: ${temp.starts()} starts`);
    temp.p.kill('SIGTERM');
    await temp.exited;
    const config = supervise('config', 'echo "trustroll-agent: E_AGENT_CONFIG: setting \\"role\\"" >&2; exit 78');
    assert.equal(await config.exited, 78);
    assert.equal(config.starts(), 1, 'not restarted after 78');
    assert.match(readFileSync(config.log, 'utf8'), /E_AGENT_CONFIG[\s\S]*exit 78 .*not restarting/);
  });
});
