/**
 * A device on the smallest EEPROM the README offers (64 KiB, 64-byte
 * pages): 100 rotations fit for good (the record levels off far below one
 * slot), a step whose result would not fit is refused before anything is
 * written (E_STORE_FULL, store byte-identical), and a damaged newest slot
 * is reported as a roll-back (E_STORE_REGRESSED) in the agent's status and
 * state message until the lost steps are applied again from the same
 * signed commands.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.ts';
import { RecordStateStore } from '../../agent/record-state-store.ts';
import { deviceStatus } from '../../agent/status.ts';
import { openHal, type Hal } from '../../hal/config.ts';
import type { EepromGeometry } from '../../hal/eeprom/byte-device.ts';
import { createRoot, type RootMaterial } from '../../manager/ca/root.ts';
import { createRootUpdate } from '../../manager/ca/root-update.ts';
import { LeafIssuer } from '../../manager/ca/leaf-issuer.ts';
import { ManualClock } from '../../protocol/clock.ts';
import { createLogger } from '../../protocol/log.ts';
import type { Command } from '../../protocol/messages/command.ts';
import { damageSlot } from '../faults/support/eeprom-damage.ts';

const DAY = 86_400_000;
const SMALLEST: EepromGeometry = { size: 65536, pageSize: 64, writeGranularity: 1 };
const T0 = new Date('2026-01-01T00:00:00Z');

describe('agent: record budget and roll-back on EEPROM', function () {
  this.timeout(240_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-budget-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const logger = createLogger({ level: 'error', sink: () => undefined });
  const file = () => join(dir, 'eeprom.bin');
  const open = async (clock: ManualClock) => {
    const hal: Hal = await openHal({ keys: { backend: 'eeprom', protection: 'plain' }, records: { backend: 'eeprom' }, eeprom: { device: file(), ...SMALLEST } });
    const store = new RecordStateStore(hal.records);
    return { hal, store, close: async () => { await store.close(); await hal.keys.close(); } };
  };
  const digest = () => createHash('sha256').update(readFileSync(file())).digest('hex');

  /** A server provisioned under a fresh root; `rotate` drives P1, P4, P5 of one rotation and returns the commands. */
  async function provisionedServer(clock: ManualClock) {
    const dev = await open(clock);
    const key = await dev.hal.keys.create('device', 'P-256');
    let root: RootMaterial = await createRoot({ subject: 'CN=Budget Root,O=trustroll test', algorithm: 'P-256', notBefore: T0, notAfter: new Date(T0.getTime() + 3650 * DAY) });
    const cert = new LeafIssuer(root).issue({ commonName: 'printer-1', publicKey: key.spki, profile: 'server', notBefore: T0, notAfter: new Date(T0.getTime() + 3000 * DAY) });
    const agent = await Agent.provision({ deviceId: 'printer-1', role: 'server', store: dev.store, keys: dev.hal.keys, clock, logger }, { root: root.cert, certificate: cert, keyLabel: 'device' });
    let seq = 0;
    let n = 0;
    const commands = async (): Promise<Command[]> => {
      clock.advance(DAY);
      const update = await createRootUpdate({ old: root, now: clock.now(), lifetimeDays: 3650 });
      const sn = new LeafIssuer(update.next).issue({ commonName: 'printer-1', publicKey: key.spki, profile: 'server', notBefore: clock.now(), notAfter: new Date(clock.now().getTime() + 3000 * DAY) });
      root = update.next;
      const rotationId = `rot-${++n}`;
      const cmd = (step: string, payload: Command['payload']): Command => ({ v: 1, kind: 'command', deviceId: 'printer-1', rotationId, schedule: 'six-step', seq: ++seq, step, issuedAt: clock.now().toISOString(), payload });
      return [cmd('P1', { distribution: update.distribution }), cmd('P4', { certificate: sn }), cmd('P5', { newRoot: update.next.cert })];
    };
    return { dev, agent, commands };
  }

  it('100 rotations on the 64 KiB part: every step acknowledged, the record levels off well inside one slot', async () => {
    const clock = new ManualClock(T0);
    const { dev, agent, commands } = await provisionedServer(clock);
    const sizes: number[] = [];
    for (let r = 0; r < 100; r++) {
      for (const c of await commands()) {
        const ack = await agent.handle(c);
        assert.equal(ack.ok, true, `rotation ${r + 1} ${c.step}: ${ack.error?.code} ${ack.error?.message}`);
      }
      sizes.push(await dev.store.storedBytes());
    }
    const room = dev.hal.records.room!('device-state');
    const max = Math.max(...sizes);
    // Bounded: once the result and history rings are full (a few rotations), the last 50 rotations do not grow the record.
    assert.ok(Math.max(...sizes.slice(50)) <= Math.max(...sizes.slice(10, 20)) + 64, `record keeps growing: ${sizes.filter((_, i) => i % 10 === 0).join(', ')}`);
    assert.ok(max < room / 2, `record ${max} bytes should stay under half of the ${room} bytes a slot leaves it`);
    console.log(`      record after 1/10/100 rotations: ${sizes[0]}/${sizes[9]}/${sizes[99]} bytes; room ${room} bytes`);
    assert.deepEqual(agent.status().completed, ['P1', 'P4', 'P5']);
    await dev.close();
  });

  it('a step whose result would not fit the slot is refused up front with E_STORE_FULL and changes nothing', async () => {
    const clock = new ManualClock(T0);
    const { dev, agent, commands } = await provisionedServer(clock);
    // Fill the image with another record so the device record has little room left.
    await dev.hal.records.write('filler', Buffer.alloc(dev.hal.records.room!('filler') - 300, 7));
    const before = digest();
    const [p1] = await commands();
    const ack = await agent.handle(p1!);
    assert.equal(ack.ok, false);
    assert.equal(ack.error?.code, 'E_STORE_FULL', ack.error?.message);
    assert.match(ack.error!.message, /nothing was changed/);
    assert.equal(digest(), before, 'EEPROM byte-identical');
    assert.equal(agent.status().rotationId, null);
    await dev.close();
  });

  it('a damaged newest slot after a completed rotation: E_STORE_REGRESSED in status and state, never "in progress, safe"; the same signed command repairs it', async () => {
    const clock = new ManualClock(T0);
    const { dev, agent, commands } = await provisionedServer(clock);
    const cmds = await commands();
    for (const c of cmds) assert.equal((await agent.handle(c)).ok, true);
    await dev.close();
    damageSlot(file(), SMALLEST, 'newer', 'bit-flip', 11);

    const again = await open(clock);
    const reopened = await Agent.open({ deviceId: 'printer-1', role: 'server', store: again.store, keys: again.hal.keys, clock, logger });
    const st = reopened.status();
    assert.deepEqual(st.completed, ['P1', 'P4'], 'the older copy (after P4) was loaded');
    assert.equal(st.regression?.code, 'E_STORE_REGRESSED');
    assert.equal(st.regression?.loadedSeq, 2);
    const status = deviceStatus(reopened.snapshot(), await again.store.history(5), clock.now(), again.store.integrity());
    assert.equal(status.regression?.code, 'E_STORE_REGRESSED');
    assert.ok(!status.warnings.some((w) => /this is safe, the manager continues it/.test(w)), status.warnings.join('\n'));
    assert.ok(status.warnings.some((w) => /E_STORE_REGRESSED/.test(w)));

    // The manager re-sends the acknowledged P5 (same signed command, same seq): applied again, roll-back repaired.
    const ack = await reopened.handle(cmds[2]!);
    assert.equal(ack.ok, true, ack.error?.message);
    assert.deepEqual(ack.state.completed, ['P1', 'P4', 'P5']);
    assert.equal(reopened.status().regression, null);
    await again.close();
  });
});
