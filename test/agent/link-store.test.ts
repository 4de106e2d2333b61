import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceRecord } from '../../agent/device-record.ts';
import { LINK_FILES, LINK_KEY_LABEL, LinkStore, linkMaterialOf } from '../../agent/link-rotation/link-store.ts';
import { sealRecord } from '../../agent/state-store.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { isProtocolError } from '../../protocol/errors.ts';

describe('agent: the link record under the state folder is the truth; the configured link.ca and link.cert are the factory\'s, only read', () => {
  let dir = '';
  afterEach(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  const setup = async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-linkstore-'));
    const oldPki = await ManagementPki.create({ now: new Date() });
    const newPki = await ManagementPki.create({ now: new Date() });
    mkdirSync(join(dir, 'etc'));
    const link = { ca: join(dir, 'etc', 'ca.pem'), cert: join(dir, 'etc', 'device.pem') };
    writeFileSync(link.ca, oldPki.ca);
    writeFileSync(link.cert, oldPki.device('console-1').cert);
    const place = { dir: join(dir, 'state', 'link'), link };
    const record: DeviceRecord = {
      version: 1, deviceId: 'console-1', role: 'client',
      trust: { current: oldPki.ca, distribution: null, next: newPki.ca },
      identity: { active: { cert: newPki.device('console-1').cert, keyLabel: LINK_KEY_LABEL }, fallback: { cert: oldPki.device('console-1').cert, keyLabel: LINK_KEY_LABEL } },
      rotation: { id: 'link-1', schedule: 'link-rotation', completed: ['LC1'] }, lastSeq: 7, results: [],
    };
    const bothRoots = `${oldPki.ca.trim()}\n${newPki.ca.trim()}\n`;
    return { link, place, record, oldPki, newPki, bothRoots };
  };
  const stateFile = (place: { dir: string }, name: keyof typeof LINK_FILES) => join(place.dir, LINK_FILES[name]);

  it('save writes the sealed record, then the CA (every trusted root) and the certificate presented first, all under the state folder; the configured files stay', async () => {
    const { link, place, record, oldPki, newPki, bothRoots } = await setup();
    assert.equal(linkMaterialOf(place), null, 'no record: the configured files are in force');
    new LinkStore(place).save(record);
    assert.deepEqual(new LinkStore(place).load(), record);
    assert.equal(readFileSync(stateFile(place, 'ca'), 'utf8'), bothRoots);
    assert.equal(readFileSync(stateFile(place, 'cert'), 'utf8'), newPki.device('console-1').cert.trim() + '\n');
    assert.equal(readFileSync(link.ca, 'utf8'), oldPki.ca);
    assert.equal(readFileSync(link.cert, 'utf8'), oldPki.device('console-1').cert);
    assert.deepEqual(linkMaterialOf(place), { ca: bothRoots, cert: newPki.device('console-1').cert.trim() + '\n', path: stateFile(place, 'record'), source: 'state' });
  });

  it('a power cut between the record and its copies is repaired when the record is opened', async () => {
    const { place, record, oldPki, newPki, bothRoots } = await setup();
    new LinkStore(place).save(record);
    writeFileSync(stateFile(place, 'ca'), oldPki.ca);
    rmSync(stateFile(place, 'cert'));
    new LinkStore(place).load();
    assert.equal(readFileSync(stateFile(place, 'ca'), 'utf8'), bothRoots);
    assert.equal(readFileSync(stateFile(place, 'cert'), 'utf8'), newPki.device('console-1').cert.trim() + '\n');
  });

  it('a damaged record is E_STORE_CORRUPT and its copies stay as they are', async () => {
    const { place, record } = await setup();
    const store = new LinkStore(place);
    store.save(record);
    const sealed = JSON.parse(readFileSync(store.path, 'utf8')) as { body: string; hash: string };
    writeFileSync(store.path, JSON.stringify({ ...sealed, body: sealed.body.replace('"lastSeq":7', '"lastSeq":9') }));
    const ca = readFileSync(stateFile(place, 'ca'), 'utf8');
    assert.throws(() => new LinkStore(place).load(), (e: unknown) => isProtocolError(e, 'E_STORE_CORRUPT'));
    assert.throws(() => linkMaterialOf(place), (e: unknown) => isProtocolError(e, 'E_STORE_CORRUPT'));
    assert.equal(readFileSync(stateFile(place, 'ca'), 'utf8'), ca);
  });

  it('a device from the field with link-state.json beside link.cert: read there, copied to the state folder on open, written only there from then on, nothing lost', async () => {
    const { link, place, record, newPki, bothRoots } = await setup();
    // What earlier versions left: the record beside link.cert (no factory stamp), and link.ca/link.cert rewritten to match it.
    const legacy = join(dir, 'etc', LINK_FILES.record);
    const legacyText = JSON.stringify(sealRecord(record));
    writeFileSync(legacy, legacyText);
    writeFileSync(link.ca, bothRoots);
    writeFileSync(link.cert, newPki.device('console-1').cert.trim() + '\n');
    assert.equal(linkMaterialOf(place)!.source, 'legacy', 'the technician\'s tools read it where it is');
    assert.equal(linkMaterialOf(place)!.path, legacy);
    const store = new LinkStore(place);
    assert.deepEqual(store.load(), record, 'the state as it was');
    assert.ok(existsSync(stateFile(place, 'record')), 'copied into the state folder');
    assert.equal(linkMaterialOf(place)!.source, 'state');
    const next: DeviceRecord = { ...record, trust: { current: newPki.ca, distribution: null, next: null }, identity: { active: record.identity.active, fallback: null }, lastSeq: 8 };
    store.save(next);
    assert.equal(readFileSync(legacy, 'utf8'), legacyText, 'the old place is never written again');
    assert.deepEqual(new LinkStore(place).load(), next, 'the newest durable copy (the state folder\'s) wins over the legacy one');
    assert.equal(linkMaterialOf(place)!.ca, newPki.ca.trim() + '\n');
  });

  it('a device provisioned again (a new certificate in link.cert): the configured files win over an older record', async () => {
    const { link, place, record } = await setup();
    new LinkStore(place).save(record);
    const reissued = await ManagementPki.create({ now: new Date() });
    writeFileSync(link.ca, reissued.ca);
    writeFileSync(link.cert, reissued.device('console-1').cert);
    assert.equal(linkMaterialOf(place), null);
    assert.equal(new LinkStore(place).load(), null, 'the rotator starts again from the configured files');
  });
});
