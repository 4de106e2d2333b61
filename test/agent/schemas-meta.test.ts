/**
 * The agent's validators compile their schemas without checking them
 * against the JSON Schema meta-schema (`validateSchema: false`: that check
 * compiled the draft-07 meta-schema once per Ajv instance and cost the idle
 * agent about 2 MB, see bench/footprint.ts). The schemas are constants, so
 * the check moves here: every schema the agent, the HAL and the protocol
 * validate with must be a valid draft-07 schema and compile in the strict
 * mode its validator uses.
 */
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { agentConfigSchema } from '../../agent/config.ts';
import { HEALTH_SCHEMA } from '../../agent/health-file.ts';
import { halConfigSchema } from '../../hal/config-schema.ts';
import { ACK_SCHEMA } from '../../protocol/messages/ack.ts';
import { COMMAND_SCHEMA, payloadSchema } from '../../protocol/messages/command.ts';
import { DESIRED_SCHEMA, DEVICE_STATE_SCHEMA } from '../../protocol/messages/device-state.ts';
import { SCHEDULES } from '../../protocol/steps.ts';

/** Each schema with the strictness of the validator that uses it (agent/config.ts and health-file.ts are lax, the rest strict). */
const schemas: { name: string; schema: object; strict: boolean }[] = [
  { name: 'agent config', schema: agentConfigSchema, strict: false },
  { name: 'health file', schema: HEALTH_SCHEMA, strict: false },
  { name: 'HAL config', schema: halConfigSchema, strict: true },
  { name: 'ack', schema: ACK_SCHEMA, strict: true },
  { name: 'command', schema: COMMAND_SCHEMA, strict: true },
  { name: 'desired state', schema: DESIRED_SCHEMA, strict: true },
  { name: 'device state', schema: DEVICE_STATE_SCHEMA, strict: true },
  ...Object.values(SCHEDULES).flatMap((s) => s.steps.map((step) => ({ name: `payload ${s.name}/${step.id}`, schema: payloadSchema(s, step.id), strict: true }))),
];

/** The meta-schema errors of `schema`, or [] when it is a valid draft-07 schema that compiles. */
function problems(schema: object, strict: boolean): string[] {
  const ajv = new Ajv({ strict, discriminator: true, strictRequired: false });
  if (!ajv.validateSchema(schema)) return (ajv.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}`);
  try {
    ajv.compile(schema);
  } catch (err) {
    return [(err as Error).message];
  }
  return [];
}

describe('agent: the schemas it validates with are valid JSON Schema', () => {
  it('the agent config, health file, HAL config, messages and every step payload pass the meta-schema and compile', () => {
    assert.ok(schemas.length > 10);
    for (const { name, schema, strict } of schemas) assert.deepEqual(problems(schema, strict), [], name);
  });

  it('the check refuses a schema with a bad keyword value and one with an unknown keyword', () => {
    assert.match(problems({ type: 'object', properties: { port: { type: 'integr' } } }, false).join('\n'), /type/);
    assert.match(problems({ type: 'object', propertees: {} }, true).join('\n'), /unknown keyword/);
  });
});
