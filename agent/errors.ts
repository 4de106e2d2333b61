/**
 * Agent-local failures that never travel in an acknowledgement: bad
 * configuration and provisioning mistakes, caught at start, and what the
 * technician's self-test finds.
 */

/** Agent error codes with the action to take. */
export const AGENT_ERRORS = {
  E_AGENT_NOT_PROVISIONED: 'The device has no trust store yet; provision it (root certificate and device certificate) before starting the agent.',
  E_AGENT_CONFIG: 'The agent configuration is invalid; fix the setting named in the message.',
  E_AGENT_LINK: 'The device cannot reach the broker, or the broker refused its subscriptions; check the broker URL, the device\'s management certificate (CN = device id) and the broker ACL. The link keeps retrying with back-off.',
  E_AGENT_PROVISION: 'The provisioning material is inconsistent (certificate does not chain to the root, or is for another key); re-issue it.',
  E_AGENT_RELAY: 'A relayed device could not exchange commands with its relay over mutual TLS (relay not running, not configured to serve this device, or unreachable). Check the relay\'s "relay.for" list and this device\'s "via"; the device keeps trying and the manager resends what was not acknowledged.',
  E_AGENT_NOT_RUNNING: 'The device agent is not running (never started since the device booted, stopped, crashed, or its start failed: the technician\'s tools show the reason it left); fix what that reason names, then start it (systemctl start trustroll-agent, or trustroll-agent run --config <file>).',
  E_AGENT_PERMISSION: 'The agent\'s user cannot write a folder the agent keeps its state in (ownership or mode, a read-only mount, an immutable flag): a permission problem, not a setting. Run the command the technician\'s tools print (chown/chmod, mount -o remount,rw or chattr -i on the named path), then start or restart the agent.',
  E_AGENT_CONFIG_CHANGED: 'The running agent uses another configuration than the file on disk (the file was edited after the agent started, or the agent was started from another file); restart the agent so it runs what the file says, then check again.',
  E_AGENT_TLS_SERVICE: 'The server-role device\'s mutual-TLS port serves nothing, or presents another certificate than the one in its trust store (the agent is not running, did not reload, or another program holds the port); start or restart the agent and check tls.port.',
} as const;

/** A stable agent error code. */
export type AgentErrorCode = keyof typeof AGENT_ERRORS;

/** A typed agent error with a code programs can match. */
export class AgentError extends Error {
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'AgentError';
    this.code = code;
  }
}
