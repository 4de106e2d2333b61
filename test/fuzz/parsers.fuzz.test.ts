/**
 * Fuzzing (fast-check, 10,000 inputs per target) of everything that parses
 * outside input: command envelopes and step payloads through the device's
 * dispatcher, acknowledgement and device-state envelopes, PEM/DER
 * certificates and the DER reader, agent and HAL configurations, and
 * EEPROM slot images. Each input is accepted as valid or rejected with a
 * typed error (a code from the registries); a rejected command never
 * reaches the store, the device record is never changed in place, and
 * opening a random EEPROM image never writes to it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { dispatch } from '../../agent/dispatcher.ts';
import type { DeviceRecord } from '../../agent/device-record.ts';
import { AgentError } from '../../agent/errors.ts';
import { checkAgentConfig } from '../../agent/config.ts';
import { checkHalConfig } from '../../hal/config.ts';
import { AbStore } from '../../hal/eeprom/ab-store.ts';
import type { ByteDevice } from '../../hal/eeprom/byte-device.ts';
import { SLOT_HEADER_BYTES, decodeSlot, encodeHeader, encodePayload } from '../../hal/eeprom/slot-image.ts';
import { HalError } from '../../hal/errors.ts';
import { ProtocolError, PROTOCOL_ERRORS } from '../../protocol/errors.ts';
import { assertAck } from '../../protocol/messages/ack.ts';
import { assertDeviceState } from '../../protocol/messages/device-state.ts';
import { certificateExtensions } from '../../protocol/der-reader.ts';
import { parseCertificate } from '../../protocol/pem.ts';
import { parseWire } from '../../protocol/validate.ts';
import { SAFE_SCHEDULES } from '../../protocol/steps.ts';
import { deviceFixture, type DeviceFixture } from '../support/device-fixture.ts';

const RUNS = Number(process.env.TRUSTROLL_FUZZ_RUNS ?? 10_000);
const counts: Record<string, number> = {};
const params = (name: string) => ({ numRuns: RUNS, seed: Number(process.env.TRUSTROLL_FUZZ_SEED ?? 20261124), endOnFailure: true, examples: [], ...(counts[name] = RUNS, {}) });

/** A JSON value mutated at one random path (replaced by any value, or removed). */
function mutated(base: unknown): fc.Arbitrary<unknown> {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, p: (string | number)[]) => {
    paths.push(p);
    if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...p, Array.isArray(v) ? Number(k) : k]);
  };
  walk(base, []);
  return fc.tuple(fc.constantFrom(...paths), fc.oneof(fc.anything(), fc.constant(undefined), fc.string(), fc.integer(), fc.constant(null))).map(([path, value]) => {
    if (path.length === 0) return value;
    const copy = structuredClone(base) as Record<string | number, unknown>;
    let at = copy;
    for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
    if (value === undefined) delete at[path.at(-1)!];
    else at[path.at(-1)!] = value;
    return copy;
  });
}

const typedProtocol = (e: unknown) => e instanceof ProtocolError && e.code in PROTOCOL_ERRORS;

describe('fuzz: parsers of outside input', function () {
  this.timeout(180_000);
  let f: DeviceFixture;
  let record: DeviceRecord;
  before(async () => {
    f = await deviceFixture();
    record = f.server.agent.snapshot();
  });
  after(async () => {
    await f?.close();
    console.log(`      inputs per target: ${JSON.stringify(counts)}`);
  });

  it('command envelopes and step payloads: a typed error ack, nothing persisted, the record untouched', async () => {
    const valid = f.command(f.server, 1, 'P1', { distribution: f.update.distribution });
    const frozen = JSON.stringify(record);
    let persisted = 0;
    let accepted = 0;
    const input = fc.oneof(
      mutated(valid),
      mutated(valid).map((v) => JSON.stringify(v) ?? ''),
      fc.json().map((s) => Buffer.from(s)),
      fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
      fc.string({ maxLength: 256 }),
    );
    await fc.assert(fc.asyncProperty(input, async (raw) => {
      const { ack, changed } = await dispatch(raw as Buffer | string | object, {
        record, schedules: SAFE_SCHEDULES, now: f.clock.now(), ownKeys: async () => [{ label: f.server.keyLabel, spki: (await f.server.keys.get(f.server.keyLabel))!.spki }],
        persist: async () => { persisted++; },
      });
      if (ack.ok) {
        accepted++;
        assert.equal(changed, true);
      } else {
        assert.equal(changed, false);
        assert.ok(ack.error && ack.error.code in PROTOCOL_ERRORS, `untyped rejection ${JSON.stringify(ack.error)}`);
      }
      assertAck(JSON.parse(JSON.stringify(ack)));
    }), params('command'));
    assert.equal(persisted, accepted, 'only accepted commands reach the store');
    assert.equal(JSON.stringify(record), frozen, 'the device record was never modified in place');
  });

  it('acknowledgement and device-state envelopes: valid or E_SCHEMA/E_PAYLOAD_TOO_LARGE', async () => {
    const ack = await f.server.agent.handle(f.command(f.server, 1, 'P1', { distribution: f.update.distribution }));
    const state = { v: 1, kind: 'state', deviceId: 'srv-1', status: 'online', role: 'server', lastSeq: 1, state: ack.state, at: new Date().toISOString(),
      regression: { code: 'E_STORE_REGRESSED', lostWrites: 1, missingWrites: 1, loadedSeq: 0, detectedAt: new Date().toISOString(), message: 'x' } };
    for (const [name, base, check] of [['ack', ack, assertAck], ['device-state', state, assertDeviceState]] as const) {
      fc.assert(fc.property(fc.oneof(mutated(base), fc.json().map((s) => s as unknown)), (v) => {
        try {
          const parsed = typeof v === 'string' ? parseWire(v, name) : v;
          (check as (x: unknown) => void)(parsed);
        } catch (e) {
          assert.ok(typedProtocol(e), `${name}: untyped ${String(e)}`);
        }
      }), params(name));
    }
  });

  it('PEM and DER certificates: parsed, or E_PEM; the DER reader fails only with its own DER errors', () => {
    const der = Buffer.from(f.update.distribution.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const flipped = fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(der.length)).map(([at, x, cut]) => {
      const b = Buffer.from(der);
      b[at]! ^= x;
      return b.subarray(0, Math.max(1, cut));
    });
    const toPem = (b: Buffer) => `-----BEGIN CERTIFICATE-----\n${b.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
    fc.assert(fc.property(fc.oneof(flipped, fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b))), fc.boolean(), (bytes, asPem) => {
      try {
        parseCertificate(asPem ? toPem(bytes) : bytes.toString('latin1'), 'fuzzed');
      } catch (e) {
        assert.ok(typedProtocol(e) && (e as ProtocolError).code === 'E_PEM', `untyped ${String(e)}`);
      }
      try {
        certificateExtensions(bytes);
      } catch (e) {
        assert.ok(e instanceof Error && /^DER: /.test(e.message), `DER reader: ${String(e)}`);
      }
    }), params('pem-der'));
  });

  it('agent and HAL configurations: valid, or E_AGENT_CONFIG / E_HAL_* naming a setting', () => {
    const base = {
      deviceId: 'printer-1', role: 'server',
      hal: { keys: { backend: 'eeprom', protection: 'plain' }, records: { backend: 'eeprom' }, eeprom: { device: '/dev/eeprom0', size: 65536, pageSize: 64, writeGranularity: 1 } },
      store: { kind: 'hal-records' },
      link: { url: 'mqtts://broker:8883', ca: 'ca.pem', cert: 'd.pem', key: 'd.key', commandKeys: { k: 'c.pem' } },
      tls: { host: '0.0.0.0', port: 8443 },
    };
    fc.assert(fc.property(fc.oneof(mutated(base), mutated(base.hal).map((hal) => ({ ...base, hal })), fc.anything()), (v) => {
      try {
        checkAgentConfig(v);
      } catch (e) {
        assert.ok(e instanceof AgentError && e.code === 'E_AGENT_CONFIG' && /setting "/.test(e.message), `agent config: ${String(e)}`);
      }
      try {
        checkHalConfig((v as { hal?: unknown } | null)?.hal ?? v);
      } catch (e) {
        assert.ok(e instanceof HalError && e.setting !== undefined, `hal config: ${String(e)}`);
      }
    }), params('config'));
  });

  it('EEPROM slot images: decoded or refused; opening a random image adopts a valid slot or fails with a HAL error, and writes nothing', async () => {
    const records = new Map([['r:device-state', Buffer.from('{"v":1}')], ['k:device', Buffer.alloc(40, 3)]]);
    const payload = encodePayload(records);
    const header = encodeHeader(7, payload);
    const g = { size: 1024, pageSize: 32, writeGranularity: 1 };
    const image = Buffer.alloc(g.size, 0xff);
    header.copy(image, 0);
    payload.copy(image, SLOT_HEADER_BYTES);
    const damaged = fc.tuple(fc.array(fc.tuple(fc.nat(g.size - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.boolean()).map(([edits, fill]) => {
      const b = fill ? Buffer.from(image) : Buffer.alloc(g.size, 0xff);
      for (const [at, v] of edits) b[at] = v;
      return b;
    });
    await fc.assert(fc.asyncProperty(fc.oneof(damaged, fc.uint8Array({ minLength: g.size, maxLength: g.size }).map((b) => Buffer.from(b))), async (bytes) => {
      const digest = createHash('sha256').update(bytes).digest('hex');
      try {
        decodeSlot(bytes.subarray(0, SLOT_HEADER_BYTES), bytes.subarray(SLOT_HEADER_BYTES, SLOT_HEADER_BYTES + Math.min(200, bytes.readUInt32BE(8))));
      } catch (e) {
        assert.ok(e instanceof HalError, `decodeSlot: ${String(e)}`);
      }
      let writes = 0;
      const dev: ByteDevice = {
        ...g,
        read: async (o, l) => Buffer.from(bytes.subarray(o, o + l)),
        write: async () => { writes++; },
        sync: async () => undefined,
        close: async () => undefined,
      };
      try {
        const ab = await AbStore.open(dev);
        const i = ab.integrity();
        assert.ok(i.loadedGeneration >= 0 && i.missingWrites >= 0);
        for (const n of ab.names('')) assert.ok(Buffer.isBuffer(ab.get(n)));
      } catch (e) {
        assert.ok(e instanceof HalError && e.code === 'E_HAL_RECORD_CORRUPT', `open: ${String(e)}`);
      }
      assert.equal(writes, 0, 'opening wrote to the device');
      assert.equal(createHash('sha256').update(bytes).digest('hex'), digest);
    }), params('eeprom-image'));
  });
});
