import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceRecord } from '../../agent/device-record.ts';
import { LINK_KEY_LABEL, LinkStore } from '../../agent/link-rotation/link-store.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { isProtocolError } from '../../protocol/errors.ts';

describe('agent: the link record is the truth, link.ca and link.cert follow it', () => {
  let dir = '';
  afterEach(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  const setup = async () => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-linkstore-'));
    const oldPki = await ManagementPki.create({ now: new Date() });
    const newPki = await ManagementPki.create({ now: new Date() });
    const link = { ca: join(dir, 'ca.pem'), cert: join(dir, 'device.pem') };
    writeFileSync(link.ca, oldPki.ca);
    writeFileSync(link.cert, oldPki.device('console-1').cert);
    const record: DeviceRecord = {
      version: 1, deviceId: 'console-1', role: 'client',
      trust: { current: oldPki.ca, distribution: null, next: newPki.ca },
      identity: { active: { cert: newPki.device('console-1').cert, keyLabel: LINK_KEY_LABEL }, fallback: { cert: oldPki.device('console-1').cert, keyLabel: LINK_KEY_LABEL } },
      rotation: { id: 'link-1', schedule: 'link-rotation', completed: ['LC1'] }, lastSeq: 7, results: [],
    };
    return { link, record, oldPki, newPki };
  };

  it('save writes the sealed record, then the CA file (every trusted root) and the certificate presented first', async () => {
    const { link, record, oldPki, newPki } = await setup();
    const store = new LinkStore(link);
    store.save(record);
    assert.deepEqual(new LinkStore(link).load(), record);
    assert.equal(readFileSync(link.ca, 'utf8'), `${oldPki.ca.trim()}\n${newPki.ca.trim()}\n`);
    assert.equal(readFileSync(link.cert, 'utf8'), newPki.device('console-1').cert.trim() + '\n');
  });

  it('a power cut between the record and its mirror files is repaired when the record is opened', async () => {
    const { link, record, oldPki, newPki } = await setup();
    new LinkStore(link).save(record);
    writeFileSync(link.ca, oldPki.ca);
    writeFileSync(link.cert, oldPki.device('console-1').cert);
    new LinkStore(link).load();
    assert.equal(readFileSync(link.ca, 'utf8'), `${oldPki.ca.trim()}\n${newPki.ca.trim()}\n`);
    assert.equal(readFileSync(link.cert, 'utf8'), newPki.device('console-1').cert.trim() + '\n');
  });

  it('a damaged record is E_STORE_CORRUPT and the link files stay as they are', async () => {
    const { link, record } = await setup();
    const store = new LinkStore(link);
    store.save(record);
    const sealed = JSON.parse(readFileSync(store.path, 'utf8')) as { body: string; hash: string };
    writeFileSync(store.path, JSON.stringify({ ...sealed, body: sealed.body.replace('"lastSeq":7', '"lastSeq":9') }));
    const ca = readFileSync(link.ca, 'utf8');
    assert.throws(() => new LinkStore(link).load(), (e: unknown) => isProtocolError(e, 'E_STORE_CORRUPT'));
    assert.equal(readFileSync(link.ca, 'utf8'), ca);
  });
});
