import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runSelftest } from '../../agent/selftest/selftest.ts';
import type { SelftestReport } from '../../agent/selftest/report.ts';
import { SCHEDULES } from '../../protocol/steps.ts';
import { SelftestFleet, selftestFleetLog, until } from '../support/selftest-fleet.ts';

const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const exec = promisify(execFile);

/** Checks that are not ok, for assertion messages. */
const problems = (r: SelftestReport) => r.checks.filter((c) => c.status !== 'ok').map((c) => `${c.name}: ${c.status} ${c.message}`).join('\n');

describe('trustroll-agent selftest at every phase of a rotation (Mosquitto, live agents)', function () {
  this.timeout(120_000);
  let fleet: SelftestFleet | null = null;
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.error(selftestFleetLog.slice(-40).join('\n'));
    await fleet?.close();
    fleet = null;
  });

  async function startFleet(): Promise<SelftestFleet> {
    const f = (fleet = await SelftestFleet.create());
    await f.provision('printer-1', 'server');
    await f.provision('console-1', 'client', { probe: { targets: [f.target('printer-1')], intervalMs: 50 } });
    await f.start('printer-1');
    await f.start('console-1');
    await f.startManager();
    return f;
  }

  it('six-step: every check passes before, between and after the steps, and the report follows the roots the devices trust', async () => {
    const f = await startFleet();
    const trusted = new Map<string, string[][]>([['printer-1', []], ['console-1', []]]);
    let cliChecked = false;
    const phase = async (label: string) => {
      for (const dev of f.devices.values()) {
        const r = await runSelftest(dev.config);
        assert.equal(r.result, 'ok', `${dev.id} ${label}:\n${problems(r)}`);
        assert.deepEqual(r.checks.map((c) => c.name), ['key', 'store', 'chain', 'config', 'permissions', 'agent', 'link files', 'link', 'commands', dev.role === 'server' ? 'tls service' : 'peer printer-1']);
        assert.match(r.checks.find((c) => c.name === 'link')!.message, /running agent \(pid \d+\) is connected/);
        trusted.get(dev.id)!.push(r.trusts.map((t) => `${t.slot}:${t.sha256.slice(0, 8)}`));
      }
      // Once mid-rotation, through the real CLI: text report, exit 0, which roots the device trusts.
      if (!cliChecked && f.devices.get('console-1')!.running && label.includes('P2')) {
        cliChecked = true;
        const out = await exec(process.execPath, [AGENT, 'selftest', '--config', f.devices.get('console-1')!.configPath]);
        assert.match(out.stdout, /trusts:\n {2}current root: CN=Selftest Fleet Root.*\n {2}distribution root D \(NewWithOld\)/);
        assert.match(out.stdout, /\[ok  \] peer printer-1: peer printer-1 \(127\.0\.0\.1:\d+\) accepted the device certificate/);
        assert.match(out.stdout, /result: OK \(10 ok, 0 warning\(s\), 0 failed, 0 skipped\)/);
      }
    };
    await phase('before the rotation');
    const root0 = trusted.get('printer-1')![0]![0]!;
    await f.rotate(SCHEDULES['six-step']!, (steps) => phase(`after ${steps.join('+')}`));
    assert.ok(cliChecked, 'the CLI ran mid-rotation');
    for (const [id, seen] of trusted) {
      assert.ok(seen.some((t) => t.length === 2 && t[1]!.startsWith('distribution root D')), `${id} trusted R0 and D at some phase: ${JSON.stringify(seen)}`);
      const last = seen[seen.length - 1]!;
      assert.equal(last.length, 1, `${id} ends with one root`);
      assert.notEqual(last[0], root0, `${id} ends trusting the new root`);
    }
  });

  it('the broker probe of a stopped device leaves its session alone: a command queued meanwhile still reaches the agent', async () => {
    const f = await startFleet();
    await f.stop('printer-1');
    const rotationId = await f.orchestrator!.start({ schedule: SCHEDULES['six-step']! });
    await until(() => f.gate!.waiting > 0, 10_000, 'the first commands');
    const sent = f.gate!.release();
    assert.ok(sent.some((c) => c.deviceId === 'printer-1' && c.step === 'P1'), 'P1 is queued in the printer\'s session');
    const out = await exec(process.execPath, [AGENT, 'selftest', '--config', f.devices.get('printer-1')!.configPath, '--json']).catch((e: { stdout: string }) => e);
    const report = JSON.parse(out.stdout) as SelftestReport;
    assert.equal(report.checks.find((c) => c.name === 'link')!.status, 'ok', problems(report));
    assert.equal(report.checks.find((c) => c.name === 'agent')!.code, 'E_AGENT_NOT_RUNNING');
    assert.match(report.checks.find((c) => c.name === 'link')!.message, /accepted the device's management certificate/);
    const acked = () => f.db.steps(rotationId).some((s) => s.deviceId === 'printer-1' && s.step === 'P1' && s.status === 'acked');
    assert.ok(!acked());
    await f.start('printer-1');
    await until(acked, 10_000, 'the printer to acknowledge P1 from its session');
  });

  it('batched: between B1 and B2 the client\'s peer check warns that the old certificate was needed, and nothing fails', async () => {
    const f = await startFleet();
    let fallbackSeen = false;
    await f.rotate(SCHEDULES.batched!, async (steps) => {
      for (const dev of f.devices.values()) {
        const r = await runSelftest(dev.config);
        assert.ok(r.ok, `${dev.id} after ${steps}:\n${problems(r)}`);
        const peer = r.checks.find((c) => c.name.startsWith('peer'));
        if (steps.includes('B1') && peer) {
          assert.equal(peer.status, 'warn', problems(r));
          assert.match(peer.message, /refused the new certificate .* and accepted the old certificate/);
          fallbackSeen = true;
        } else assert.equal(r.result, 'ok', `${dev.id} after ${steps}:\n${problems(r)}`);
      }
    });
    assert.ok(fallbackSeen);
  });
});
