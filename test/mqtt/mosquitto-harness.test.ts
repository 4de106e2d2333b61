import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:net';
import { Mosquitto } from '../../demo/mosquitto.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';

/** Listen on 127.0.0.1:`port` with a plain TCP server that accepts and holds connections. */
function squat(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer(() => undefined);
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

// The tests' broker harness: a start that looks ready because another
// process answers on its port would run a test against the wrong server.
describe('Mosquitto test harness', function () {
  this.timeout(20_000);

  it('a broker whose port another process took is reported as failed, not ready', async () => {
    const pki = await ManagementPki.create({ now: new Date() });
    const broker = await Mosquitto.start(pki);
    try {
      assert.equal(broker.running, true);
      await broker.stop();
      const squatter = await squat(broker.port);
      try {
        await assert.rejects(broker.start(), (e: Error) => /exited at start/.test(e.message) && /address already in use/i.test(e.message));
        assert.equal(broker.running, false);
      } finally {
        await new Promise((r) => squatter.close(r));
      }
      await broker.start();
      assert.equal(broker.running, true, 'starts once the port is free again');
    } finally {
      await broker.close();
    }
  });
});
