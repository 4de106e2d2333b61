/**
 * The agent configuration's JSON Schema as a published document
 * (/opt/trustroll/share/agent-config.schema.json in the image,
 * dist/agent-config.schema.json in the npm package): the same schema the
 * agent validates with at start (agent/config.ts), with an $id and title.
 */
import { agentConfigSchema } from '../agent/config.ts';

/** The schema document, ready for JSON.stringify. */
export function agentConfigJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://trustroll.invalid/schemas/agent-config.schema.json',
    title: 'trustroll-agent configuration (/etc/trustroll/agent.json)',
    description: 'Checked by trustroll-agent at start; a file that fails it stops the agent with E_AGENT_CONFIG naming the setting. "discriminator" is the ajv/OpenAPI keyword that picks the oneOf branch by "backend" or "kind".',
    ...structuredClone(agentConfigSchema) as Record<string, unknown>,
  };
}
