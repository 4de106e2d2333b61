/**
 * `trustroll-agent` for the fault harness: the real CLI, with one planned
 * SIGKILL at a step boundary taken from the environment
 * (`TRUSTROLL_FAULT_KILL=<boundary>:<step>`):
 *
 *   after-receive   the command arrived, nothing applied yet
 *   after-persist   the step's result is durable, no acknowledgement sent
 *   after-ack       the acknowledgement reached the broker (PUBACK), the command not yet PUBACKed
 *
 * Test code only: it patches the agent's store and the MQTT client in this
 * process; production code has no fault hooks.
 */
import { MqttClient } from 'mqtt';
import { Agent } from '../../../agent/agent.ts';
import { RecordStateStore } from '../../../agent/record-state-store.ts';
import { SqliteStateStore } from '../../../agent/sqlite-state-store.ts';
import type { HistoryEntry } from '../../../agent/state-store.ts';

const plan = process.env.TRUSTROLL_FAULT_KILL;
if (plan) {
  const [boundary, step] = plan.split(':') as [string, string];
  const die = () => {
    process.stderr.write(JSON.stringify({ t: new Date().toISOString(), level: 'warn', msg: 'fault: killed', boundary, step }) + '\n');
    process.kill(process.pid, 'SIGKILL');
  };
  const stepOf = (raw: unknown): string | null => {
    try {
      const v = typeof raw === 'string' || Buffer.isBuffer(raw) ? JSON.parse(String(raw)) : raw;
      return typeof v?.step === 'string' ? v.step : null;
    } catch {
      return null;
    }
  };
  if (boundary === 'after-receive') {
    const handle = Agent.prototype.handle;
    Agent.prototype.handle = function (raw) {
      if (stepOf(raw) === step) die();
      return handle.call(this, raw);
    };
  } else if (boundary === 'after-persist') {
    for (const proto of [RecordStateStore.prototype, SqliteStateStore.prototype]) {
      const save = proto.save;
      proto.save = async function (this: typeof proto, record, entry?: HistoryEntry) {
        await save.call(this, record, entry);
        if (entry?.step === step) die();
      };
    }
  } else if (boundary === 'after-ack') {
    const publish = MqttClient.prototype.publish;
    (MqttClient.prototype as { publish: unknown }).publish = function (this: MqttClient, topic: string, message: string | Buffer, opts?: object, cb?: (err?: Error) => void) {
      if (topic.endsWith('/ack') && stepOf(message) === step) {
        return publish.call(this, topic, message, opts ?? {}, (err?: Error) => { cb?.(err); if (!err) die(); });
      }
      return (publish as (...a: unknown[]) => MqttClient).call(this, topic, message, opts, cb);
    };
  } else {
    throw new Error(`TRUSTROLL_FAULT_KILL: unknown boundary ${boundary}`);
  }
}

await import('../../../bin/trustroll-agent.ts');
