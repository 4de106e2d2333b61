/**
 * The MQTT topic layout of the management channel and the access rules a
 * broker must enforce on it (PROTOCOL.md "Who can reach whom" and "MQTT is
 * not ordered enough on its own").
 *
 *   trustroll/v1/dev/{id}/cmd      manager → device, QoS 1 (signed commands)
 *   trustroll/v1/dev/{id}/ack      device → manager, QoS 1
 *   trustroll/v1/dev/{id}/state    device, retained: birth summary; last will "offline"
 *   trustroll/v1/dev/{id}/desired  manager, retained: the step and seq the device should be at
 *   $SYS/#                         broker statistics (Mosquitto's tree), read by the manager only
 *   trustroll/v1/manager/audit/checkpoint
 *                                  manager, retained: its newest signed audit checkpoint
 *
 * Relay topologies (PROTOCOL.md "Who can reach whom"): a device that cannot
 * reach the broker is served through a peer it has mutual TLS with (its
 * relay). The same four kinds then live under the relay's own id:
 *
 *   trustroll/v1/dev/{relay}/via/{id}/{kind}
 *
 * so the relay's certificate CN decides what it may read and write (only
 * under its own id), with no per-fleet ACL. The relay forwards the signed
 * command and the signed acknowledgement unchanged; the end device checks
 * the manager's signature and sequence, the manager the device's signature
 * and that the acknowledgement came through the device's configured relay.
 *
 * Order and exactly-once effect never depend on the broker: they come from
 * the per-device sequence number inside the command envelope. Nothing here
 * needs MQTT 5; every client speaks 3.1.1 (protocolVersion 4).
 *
 * Identities are the common names of management-PKI client certificates:
 * `trustroll-manager` for the manager, the device id for a device. The same
 * rules are enforced by the embedded broker (manager/broker/embedded-broker.ts) and
 * by Mosquitto through the ACL file `mosquittoAcl()` renders.
 */
import { ProtocolError } from './errors.ts';

/** First three levels of every trustroll topic. */
export const TOPIC_PREFIX = 'trustroll/v1/dev';

/** Common name of the manager's management certificate, and its MQTT identity. */
export const MANAGER_IDENTITY = 'trustroll-manager';

/** The MQTT protocol level every trustroll client uses (3.1.1). */
export const MQTT_PROTOCOL_VERSION = 4;

/** QoS of commands, acknowledgements, state and desired state. */
export const LINK_QOS = 1;

/** The four per-device topics. */
export type TopicKind = 'cmd' | 'ack' | 'state' | 'desired';

const KINDS: readonly TopicKind[] = ['cmd', 'ack', 'state', 'desired'];

/** Same rule as command.deviceId: no MQTT wildcards, no level separator, no spaces. */
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** True if `id` can name a device in a topic (and is not the manager's identity). */
export function isDeviceId(id: unknown): id is string {
  return typeof id === 'string' && DEVICE_ID.test(id) && id !== MANAGER_IDENTITY;
}

/** Throw E_SCHEMA unless `id` is a usable device id (no `+ # /`, not the manager's name). */
export function assertDeviceId(id: unknown): asserts id is string {
  if (!isDeviceId(id)) {
    throw new ProtocolError('E_SCHEMA', `device id ${JSON.stringify(id)} cannot be used in a topic: use 1-128 of A-Z a-z 0-9 . _ : - (no + # / or spaces), not "${MANAGER_IDENTITY}"`);
  }
}

/** The topic of one kind for one device; throws E_SCHEMA for an unusable id. */
export function deviceTopic(deviceId: string, kind: TopicKind): string {
  assertDeviceId(deviceId);
  return `${TOPIC_PREFIX}/${deviceId}/${kind}`;
}

/** The topic of one kind for device `deviceId` reached through `relayId`. */
export function relayTopic(relayId: string, deviceId: string, kind: TopicKind): string {
  assertDeviceId(relayId);
  assertDeviceId(deviceId);
  if (relayId === deviceId) throw new ProtocolError('E_SCHEMA', `device ${deviceId} cannot be its own relay`);
  return `${TOPIC_PREFIX}/${relayId}/via/${deviceId}/${kind}`;
}

/** The topic of one kind for a device, direct (`via` null) or through its relay. */
export function routedTopic(deviceId: string, via: string | null, kind: TopicKind): string {
  return via ? relayTopic(via, deviceId, kind) : deviceTopic(deviceId, kind);
}

/**
 * The manager's newest signed audit checkpoint (manager/audit/audit-note.ts),
 * retained, QoS 1: a copy of the audit chain's head outside the manager's
 * data folder. Only the manager writes it; the ACL lets the manager read it,
 * and a broker operator may add read access for an auditor's identity.
 */
export const AUDIT_CHECKPOINT_TOPIC = 'trustroll/v1/manager/audit/checkpoint';

/** Filter the manager subscribes to for every device's acknowledgements. */
export const ACK_FILTER = `${TOPIC_PREFIX}/+/ack`;

/** Filter the manager subscribes to for every device's state (birth / last will). */
export const STATE_FILTER = `${TOPIC_PREFIX}/+/state`;

/** Filters the manager subscribes to for acknowledgements and state relayed by a device. */
export const RELAY_ACK_FILTER = `${TOPIC_PREFIX}/+/via/+/ack`;
export const RELAY_STATE_FILTER = `${TOPIC_PREFIX}/+/via/+/state`;

/** The filters a relay subscribes to for the devices behind it (its own id only). */
export function relayFilters(relayId: string): string[] {
  assertDeviceId(relayId);
  return [`${TOPIC_PREFIX}/${relayId}/via/+/cmd`, `${TOPIC_PREFIX}/${relayId}/via/+/desired`];
}

/** The broker's statistics tree (Mosquitto `$SYS/broker/...`); the manager subscribes with QoS 0. */
export const SYS_FILTER = '$SYS/#';

/** True for a topic or filter in the broker's reserved `$SYS` tree. */
export function isSysTopic(topic: string): boolean {
  return topic === '$SYS' || topic.startsWith('$SYS/');
}

/** A parsed device topic; `via` names the relay for a relayed one. */
export interface DeviceTopic {
  deviceId: string;
  kind: TopicKind;
  via?: string;
}

/** Split a concrete device topic (direct or relayed); null if it is not one of ours. */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  const levels = topic.split('/');
  if (levels.slice(0, 3).join('/') !== TOPIC_PREFIX) return null;
  if (levels.length === 5) {
    const [, , , deviceId, kind] = levels as [string, string, string, string, string];
    if (!isDeviceId(deviceId) || !KINDS.includes(kind as TopicKind)) return null;
    return { deviceId, kind: kind as TopicKind };
  }
  if (levels.length !== 7 || levels[4] !== 'via') return null;
  const [, , , via, , deviceId, kind] = levels as [string, string, string, string, string, string, string];
  if (!isDeviceId(via) || !isDeviceId(deviceId) || via === deviceId || !KINDS.includes(kind as TopicKind)) return null;
  return { deviceId, kind: kind as TopicKind, via };
}

/**
 * The filters a SUBACK refused (return code 0x80). MQTT.js rejects a
 * subscribe request with any refusal and carries the SUBACK on the error.
 */
export function refusedTopics(err: Error | null, requested: readonly string[]): string[] {
  if (!err) return [];
  const granted = (err as { packet?: { granted?: unknown } }).packet?.granted;
  return Array.isArray(granted) ? requested.filter((_, i) => granted[i] === 0x80) : [...requested];
}

/** Topic kinds each side may publish to; a device only under its own id. */
const MANAGER_PUBLISHES: readonly TopicKind[] = ['cmd', 'desired'];
const DEVICE_PUBLISHES: readonly TopicKind[] = ['ack', 'state'];
const MANAGER_READS: readonly TopicKind[] = ['ack', 'state'];
const DEVICE_READS: readonly TopicKind[] = ['cmd', 'desired'];

/** The device whose certificate governs a topic: the relay for a relayed one. */
function ownerOf(t: DeviceTopic): string {
  return t.via ?? t.deviceId;
}

/** May the client with certificate CN `identity` publish to `topic`? A relay publishes only under its own id. */
export function mayPublish(identity: string, topic: string): boolean {
  if (topic === AUDIT_CHECKPOINT_TOPIC) return identity === MANAGER_IDENTITY;
  const t = parseDeviceTopic(topic);
  if (!t) return false;
  if (identity === MANAGER_IDENTITY) return MANAGER_PUBLISHES.includes(t.kind);
  return isDeviceId(identity) && ownerOf(t) === identity && DEVICE_PUBLISHES.includes(t.kind);
}

/** May `identity` receive a message published on `topic` (checked again at delivery)? */
export function mayReceive(identity: string, topic: string): boolean {
  if (isSysTopic(topic) || topic === AUDIT_CHECKPOINT_TOPIC) return identity === MANAGER_IDENTITY;
  const t = parseDeviceTopic(topic);
  if (!t) return false;
  if (identity === MANAGER_IDENTITY) return MANAGER_READS.includes(t.kind);
  return isDeviceId(identity) && ownerOf(t) === identity && DEVICE_READS.includes(t.kind);
}

/**
 * May `identity` subscribe to `filter`? The manager may use `+` for the
 * device and relay levels of ack/state, any filter inside `$SYS` (broker
 * statistics) and the audit checkpoint topic; a device may subscribe only to its own cmd and desired
 * topics, and as a relay to `via/+/cmd|desired` under its own id (the only
 * wildcard it gets), and never to `$SYS`.
 */
export function maySubscribe(identity: string, filter: string): boolean {
  const levels = filter.split('/');
  if (identity === MANAGER_IDENTITY) {
    if (isSysTopic(filter) || filter === AUDIT_CHECKPOINT_TOPIC) return true;
    if (levels.slice(0, 3).join('/') !== TOPIC_PREFIX) return false;
    const idOk = (id: string) => id === '+' || isDeviceId(id);
    if (levels.length === 5) return idOk(levels[3]!) && MANAGER_READS.includes(levels[4] as TopicKind);
    return levels.length === 7 && levels[4] === 'via' && idOk(levels[3]!) && idOk(levels[5]!) && MANAGER_READS.includes(levels[6] as TopicKind);
  }
  if (levels.length === 7 && levels[5] === '+') {
    return levels.slice(0, 3).join('/') === TOPIC_PREFIX && levels[3] === identity && isDeviceId(identity) && levels[4] === 'via' && DEVICE_READS.includes(levels[6] as TopicKind);
  }
  return mayReceive(identity, filter);
}

/**
 * The same rules as a Mosquitto `acl_file` keyed on the certificate
 * identity (`use_identity_as_username true`, so `%u` is the CN, never the
 * client id). `pattern` lines apply to every user; the manager's own
 * pattern topics name a device that cannot exist (isDeviceId rejects it).
 */
export function mosquittoAcl(): string {
  return [
    '# trustroll management channel ACL (generated by protocol/topics.ts).',
    '# Usernames are certificate common names (use_identity_as_username true).',
    `user ${MANAGER_IDENTITY}`,
    ...MANAGER_PUBLISHES.map((k) => `topic write ${TOPIC_PREFIX}/+/${k}`),
    ...MANAGER_READS.map((k) => `topic read ${TOPIC_PREFIX}/+/${k}`),
    ...MANAGER_PUBLISHES.map((k) => `topic write ${TOPIC_PREFIX}/+/via/+/${k}`),
    ...MANAGER_READS.map((k) => `topic read ${TOPIC_PREFIX}/+/via/+/${k}`),
    '# Broker statistics for the manager\'s dashboard (needs sys_interval > 0); devices get no $SYS line.',
    `topic read ${SYS_FILTER}`,
    '# The newest signed audit checkpoint, retained (docs/audit.md).',
    `topic readwrite ${AUDIT_CHECKPOINT_TOPIC}`,
    '',
    ...DEVICE_READS.map((k) => `pattern read ${TOPIC_PREFIX}/%u/${k}`),
    ...DEVICE_PUBLISHES.map((k) => `pattern write ${TOPIC_PREFIX}/%u/${k}`),
    '# A relay serves the devices behind it under its own id only.',
    ...DEVICE_READS.map((k) => `pattern read ${TOPIC_PREFIX}/%u/via/+/${k}`),
    ...DEVICE_PUBLISHES.map((k) => `pattern write ${TOPIC_PREFIX}/%u/via/+/${k}`),
    '',
  ].join('\n');
}
