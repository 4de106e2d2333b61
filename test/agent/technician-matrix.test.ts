/**
 * The broken-device matrix of `trustroll-agent status` and `selftest`
 * (README, "Technician's checks"): each broken device gets a NOT OK verdict
 * (exit 1) from both tools, naming the same check and code; the advice they
 * print is then followed as a technician would, and both say OK again.
 * Real processes (the CLI), Mosquitto, agents in this process or (for the
 * permission case, as root) as the unprivileged user "nobody".
 */
import { strict as assert } from 'node:assert';
import { execFileSync, execSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { readHealth } from '../../agent/health-file.ts';
import { SCHEDULES } from '../../protocol/steps.ts';
import { freePort } from '../../demo/mosquitto.ts';
import { SelftestFleet, selftestFleetLog, until } from '../support/selftest-fleet.ts';
import { bothFail, bothOk, cli, named, noStack, runAgentAs, verdicts } from '../support/technician.ts';

const ROOT = process.getuid?.() === 0;
const NOBODY = 65534;

describe('trustroll-agent status and selftest: each broken device gets a NOT OK verdict whose advice, followed, makes it OK', function () {
  this.timeout(180_000);
  let fleet: SelftestFleet;
  before(async () => { fleet = await SelftestFleet.create(); });
  after(async () => { await fleet?.close(); });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(selftestFleetLog.slice(-30).join('\n'));
  });
  const health = (id: string) => readHealth(join(fleet.dir, 'devices', id, 'run', `${id}.health.json`), new Date());

  it('agent not running: E_AGENT_NOT_RUNNING with how to start it; started, OK', async () => {
    const dev = await fleet.provision('printer-stopped', 'server');
    const c = bothFail(await verdicts(dev.configPath), 'agent', 'E_AGENT_NOT_RUNNING');
    assert.match(c.message, /the agent is not running \(no health file .*: the agent has not run since the device started\)/);
    assert.match(c.action!, new RegExp(`trustroll-agent run --config ${dev.configPath.replace(/[.]/g, '\\.')}`));
    await fleet.start(dev.id);
    bothOk(await verdicts(dev.configPath));
    await fleet.stop(dev.id);
    const stopped = bothFail(await verdicts(dev.configPath), 'agent', 'E_AGENT_NOT_RUNNING');
    assert.match(stopped.message, /it was stopped at /);
  });

  it('broker unreachable: the running agent\'s link fails (E_AGENT_LINK); the broker back, OK', async () => {
    const dev = await fleet.provision('printer-nobroker', 'server');
    await fleet.start(dev.id);
    await fleet.broker.stop();
    try {
      await until(() => { const v = health(dev.id); return v.state === 'running' && v.health.link?.connected === false && /ECONNREFUSED/.test(v.health.link.lastError ?? ''); }, 10_000, 'the health file to show the lost link and why');
      const c = bothFail(await verdicts(dev.configPath), 'link', 'E_AGENT_LINK');
      assert.match(c.message, /is not connected to the broker mqtts:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
      assert.match(c.action!, /check that the broker runs and is reachable/);
    } finally {
      await fleet.broker.start();
    }
    await until(() => { const v = health(dev.id); return v.state === 'running' && v.health.link?.connected === true; }, 30_000, 'the agent to reconnect');
    bothOk(await verdicts(dev.configPath));
    await fleet.stop(dev.id);
  });

  it('link key missing while the agent runs: "link files" fails naming link.key; link files issued again and the agent restarted, OK', async () => {
    const dev = await fleet.provision('printer-nolinkkey', 'server');
    await fleet.start(dev.id);
    unlinkSync(dev.config.link!.key!);
    const c = bothFail(await verdicts(dev.configPath), 'link files', 'E_AGENT_CONFIG');
    assert.match(c.message, /setting "link\.key": cannot read .*device\.key \(ENOENT\) \(the running agent still holds them in memory, but would not start again\)/);
    assert.match(c.action!, /trustroll mgmt device --dir <mgmt dir> --id printer-nolinkkey --out <folder>/);
    // Followed: the manager issues the link files again ("trustroll mgmt device"), they go where link.* points, the agent restarts.
    const issued = fleet.pki.device(dev.id);
    writeFileSync(dev.config.link!.cert, issued.cert);
    writeFileSync(dev.config.link!.key!, issued.key, { mode: 0o600 });
    await fleet.stop(dev.id);
    await fleet.start(dev.id);
    bothOk(await verdicts(dev.configPath));
    await fleet.stop(dev.id);
  });

  it('device key missing: the key check fails (E_HAL_KEY_NOT_FOUND); restored from a backup as advised, OK', async () => {
    const dev = await fleet.provision('printer-nokey', 'server');
    await fleet.start(dev.id);
    const key = join(dev.dir, 'keys', 'device.key');
    copyFileSync(key, join(fleet.dir, 'device.key.backup'));
    unlinkSync(key);
    const c = bothFail(await verdicts(dev.configPath), 'key', 'E_HAL_KEY_NOT_FOUND');
    assert.match(c.action!, /restore the key store from backup/);
    copyFileSync(join(fleet.dir, 'device.key.backup'), key);
    bothOk(await verdicts(dev.configPath));
    await fleet.stop(dev.id);
  });

  it('commands refused (a command key id the manager does not use): the last refusal is kept and shown; the key id fixed and the agent restarted, the command sent again is applied, OK', async () => {
    const dev = await fleet.provision('printer-refusing', 'server');
    await fleet.provision('console-refusing', 'client'); // a rotation needs a client too; it stays stopped
    const keyId = fleet.pki.commandKey.keyId;
    fleet.editConfig(dev.id, (c) => ({ ...c, link: { ...c.link!, commandKeys: { 'manager-1': c.link!.commandKeys[keyId]! } } }));
    await fleet.start(dev.id);
    await fleet.startManager();
    await fleet.orchestrator!.start({ schedule: SCHEDULES['six-step']! });
    await until(() => fleet.gate!.waiting > 0, 10_000, 'the first commands');
    const sent = fleet.gate!.releaseFor(dev.id);
    assert.equal(sent.length, 1);
    await until(() => { const v = health(dev.id); return v.state === 'running' && v.health.refused.count > 0; }, 10_000, 'the refusal');
    const refused = await verdicts(dev.configPath);
    const c = bothFail(refused, 'commands', 'E_SIGNATURE');
    assert.match(c.message, /the device refuses the manager's commands: it refused command #\d+ \(rotation .*, step P1\) at .*: E_SIGNATURE: .*signed by unknown key/);
    assert.match(c.action!, new RegExp(`the manager signs with command key id "${keyId}", but link\\.commandKeys in .* names "manager-1": rename the entry "manager-1" to "${keyId}"`));
    // Followed: the entry renamed, the agent restarted. The manager sends the command again (the agent reports it is behind); applied.
    fleet.editConfig(dev.id, (cfg) => ({ ...cfg, link: { ...cfg.link!, commandKeys: { [keyId]: cfg.link!.commandKeys['manager-1']! } } }));
    await fleet.stop(dev.id);
    await fleet.start(dev.id);
    let after = await verdicts(dev.configPath);
    for (let i = 0; i < 20 && after.status.lastSeq !== sent[0]!.seq; i++) {
      if (i === 3) fleet.gate!.resend(sent);
      after = await verdicts(dev.configPath);
    }
    assert.equal(after.status.lastSeq, sent[0]!.seq, 'the resent P1 was applied');
    bothOk(after, { warnings: true }); // the rotation is in progress: a warning, not a problem
    assert.equal(named(after.selftest.checks, 'commands').status, 'ok');
    assert.match(named(after.selftest.checks, 'commands').message, /the last refused command was command #\d+ .*; a later one was applied/);
    await fleet.stop(dev.id);
  });

  it('the self-test\'s own probe of the TLS service is not counted as a failed handshake; a peer that does not answer is counted as unreachable, not as a trust failure', async () => {
    const printer = await fleet.provision('printer-counted', 'server');
    const running = await fleet.start(printer.id);
    const console1 = await fleet.provision('console-counted', 'client', { probe: { targets: [fleet.target(printer.id), { host: '127.0.0.1', port: await freePort(), serverId: 'printer-gone' }], intervalMs: 50 } });
    const client = await fleet.start(console1.id);
    for (let i = 0; i < 2; i++) assert.equal((await cli('selftest', '--config', printer.configPath, '--json')).code, 0);
    await until(() => (client.tlsCounters()?.unreachable ?? 0) >= 2, 10_000, 'handshakes with the peer that is gone');
    const s = running.tlsCounters()!;
    assert.ok(s.ok > 0, JSON.stringify(s));
    assert.equal(s.failed, 0, `the self-test's probes are not failures: ${JSON.stringify(s)}`);
    assert.equal(s.unreachable, 0);
    assert.equal(s.attempts, s.ok, 'nor attempts');
    // Control: the same probe without the self-test's server name is counted (the client presents no certificate).
    const port = fleet.target(printer.id).port;
    await new Promise((res) => { const sock = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }); sock.on('secureConnect', () => sock.destroy()); sock.on('error', () => undefined); sock.on('close', res); });
    await until(() => { const t = running.tlsCounters()!; return t.failed + (t.unreachable ?? 0) > 0; }, 5_000, 'an unmarked probe to be counted');
    const c = client.tlsCounters()!;
    assert.equal(c.failed, 0, `a peer that does not answer is no trust failure: ${JSON.stringify(c)}`);
    assert.ok(c.ok > 0 && c.unreachable! > 0 && c.attempts >= c.ok + c.unreachable!, JSON.stringify(c));
    await until(() => { const h = health(console1.id); return h.state === 'running' && (h.health.tls?.unreachable ?? 0) > 0; }, 10_000, 'the health file to carry the counters');
    assert.match((await cli('status', '--config', console1.configPath)).stdout, /handshakes since .*: \d+ attempted, \d+ ok, 0 failed \(trust\), [1-9]\d* peer unreachable/);
    await fleet.stop(console1.id);
    await fleet.stop(printer.id);
  });

  it('bad configuration: --json still answers JSON on stdout (exit 2) naming the setting; fixed, OK', async () => {
    const dev = await fleet.provision('printer-badconfig', 'server');
    await fleet.start(dev.id);
    const good = readFileSync(dev.configPath, 'utf8');
    writeFileSync(dev.configPath, JSON.stringify({ ...JSON.parse(good), colour: 'red' }));
    const [s, t] = await Promise.all([cli('status', '--config', dev.configPath, '--json'), cli('selftest', '--config', dev.configPath, '--json')]);
    for (const r of [s, t]) {
      noStack(r);
      assert.equal(r.code, 2, r.stderr);
    }
    const status = JSON.parse(s.stdout) as { verdict: string; problems: { name: string; code: string; message: string; action: string }[] };
    assert.equal(status.verdict, 'fail');
    assert.deepEqual(status.problems.map((p) => [p.name, p.code]), [['config', 'E_AGENT_CONFIG']]);
    assert.match(status.problems[0]!.message, /unknown setting "colour"/);
    const report = JSON.parse(t.stdout) as { ok: boolean; result: string; checks: { name: string; code: string; action: string }[] };
    assert.equal(report.result, 'fail');
    assert.deepEqual(report.checks.map((c) => [c.name, c.code]), [['config', 'E_AGENT_CONFIG']]);
    assert.match(report.checks[0]!.action, /fix the setting named in the message/);
    writeFileSync(dev.configPath, good);
    bothOk(await verdicts(dev.configPath));
    await fleet.stop(dev.id);
  });

  it('configuration edited while the agent runs: the config check says the running agent uses another one (E_AGENT_CONFIG_CHANGED); restarted, OK', async () => {
    const dev = await fleet.provision('printer-edited', 'server');
    await fleet.start(dev.id);
    fleet.editConfig(dev.id, (c) => ({ ...c, link: { ...c.link!, stateIntervalMs: 400 } }));
    const c = bothFail(await verdicts(dev.configPath), 'config', 'E_AGENT_CONFIG_CHANGED');
    assert.match(c.message, /the running agent \(pid \d+, started .*\) uses another configuration than .*agent\.json: "link" differs/);
    assert.match(c.action!, /restart the agent/);
    await fleet.stop(dev.id);
    await fleet.start(dev.id);
    bothOk(await verdicts(dev.configPath));
    await fleet.stop(dev.id);
  });

  it('state folder not writable by the agent\'s user: a permission problem naming the user and the path, never a setting; the printed command, run, makes it OK', async () => {
    const dev = await fleet.provision('printer-perm', 'server');
    const records = join(dev.dir, 'records');
    let agent: Awaited<ReturnType<typeof runAgentAs>> | null = null;
    const start = async () => { if (ROOT) agent = await runAgentAs(dev.configPath, NOBODY, NOBODY); else await fleet.start(dev.id); };
    const stop = async () => { if (ROOT) await agent?.stop(); else await fleet.stop(dev.id); };
    if (ROOT) {
      // The agent runs as "nobody", the technician's tools as root.
      for (const d of [fleet.dir, join(fleet.dir, 'devices')]) chmodSync(d, 0o711);
      execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dev.dir]);
    }
    await start();
    bothOk(await verdicts(dev.configPath));
    let v;
    if (ROOT) {
      // The records folder given to root: the agent cannot start, and says so in its health file.
      await stop();
      chownSync(records, 0, 0);
      chmodSync(records, 0o700);
      await assert.rejects(runAgentAs(dev.configPath, NOBODY, NOBODY), (e: { exitCode?: number; stderr?: string }) => e.exitCode === 77 && /E_HAL_PERMISSION: .*record directory .*records is not writable by the agent's user nobody \(uid 65534\): EACCES/.test(e.stderr ?? ''));
      v = await verdicts(dev.configPath);
      assert.match(named(v.status.problems, 'agent').message, /its start at .* as user nobody failed: E_HAL_PERMISSION/);
    } else {
      chmodSync(records, 0o500);
      await until(() => { const h = health(dev.id); return h.state === 'running' && h.health.storage.problems.length > 0; }, 20_000, 'the agent to find it cannot write');
      v = await verdicts(dev.configPath);
    }
    const c = bothFail(v, 'permissions', 'E_AGENT_PERMISSION');
    assert.match(c.message, new RegExp(`a permission problem: the agent's user ${ROOT ? 'nobody \\(uid 65534\\)' : '\\S+ \\(uid \\d+\\)'} cannot write ${records.replace(/[.]/g, '\\.')} \\(the HAL records .*\\): EACCES, ownership or mode`));
    assert.doesNotMatch(JSON.stringify(v), /hal\.hal\.|fix the setting|has not reported/);
    const fix = (c.details as { fix: string }).fix;
    assert.ok(c.action!.startsWith(`as root: ${fix}; `), c.action);
    execSync(fix, { shell: '/bin/sh' });
    if (ROOT) await start();
    else await until(() => { const h = health(dev.id); return h.state === 'running' && h.health.storage.problems.length === 0; }, 20_000, 'the agent to find it can write again');
    bothOk(await verdicts(dev.configPath));
    await stop();
  });

  it('run as root against an immutable (read-only) state folder: the agent works, and both tools name the permission problem, not a silent agent; chattr -i as advised, OK', async function () {
    if (!ROOT) this.skip();
    const dev = await fleet.provision('printer-immutable', 'server');
    const records = join(dev.dir, 'records');
    await fleet.start(dev.id);
    try {
      execFileSync('chattr', ['+i', records], { stdio: 'ignore' });
    } catch {
      await fleet.stop(dev.id);
      this.skip(); // no CAP_LINUX_IMMUTABLE here
    }
    try {
      await until(() => { const h = health(dev.id); return h.state === 'running' && h.health.storage.problems.length > 0; }, 20_000, 'the agent to find it cannot write');
      const v = await verdicts(dev.configPath);
      assert.equal(named(v.selftest.checks, 'link').status, 'ok', 'the agent itself works');
      const c = bothFail(v, 'permissions', 'E_AGENT_PERMISSION');
      assert.match(c.message, new RegExp(`the agent's user root \\(uid 0\\) cannot write ${records.replace(/[.]/g, '\\.')} .*: EPERM, it is marked immutable`));
      assert.doesNotMatch(v.statusText, /has not reported/);
      execSync((c.details as { fix: string }).fix, { shell: '/bin/sh' });
      await until(() => { const h = health(dev.id); return h.state === 'running' && h.health.storage.problems.length === 0; }, 20_000, 'the agent to find it can write again');
      bothOk(await verdicts(dev.configPath));
    } finally {
      execFileSync('chattr', ['-i', records], { stdio: 'ignore' });
      await fleet.stop(dev.id);
    }
  });
});
