/**
 * The shape of the manager database (fleet-db.ts reads and writes it): its
 * rows as types, its tables, and the columns added since, each an additive
 * change that databases made before it get at open (the schema version
 * stays 1).
 */
import type { Role } from '../../protocol/steps.ts';

/** An enrolled device. */
export interface DeviceRow {
  id: string;
  role: Role;
  commonName: string;
  spki: Buffer;
  certificate: string;
  nextSeq: number;
}

/** Where one step of one device stands. */
/** `excluded`: an operator took the device out of the rotation; its peers no longer wait for it. */
export type StepStatus = 'pending' | 'sent' | 'acked' | 'failed' | 'excluded';

/** One (rotation, device, step) row. */
export interface StepRow {
  rotationId: string;
  deviceId: string;
  step: string;
  status: StepStatus;
  seq: number | null;
  attempts: number;
  command: string | null;
  sentAt: string | null;
  ackedAt: string | null;
  /** When the in-flight attempt times out or the next retry is due (epoch ms). */
  dueAt: number | null;
  errorCode: string | null;
  errorMessage: string | null;
}

/**
 * Lifecycle of a rotation. Open: running, paused, failed, aborted (each can
 * be resumed) and rolling-back. Closed: complete and rolled-back.
 */
export type RotationStatusName = 'running' | 'paused' | 'complete' | 'failed' | 'aborted' | 'rolling-back' | 'rolled-back';

/** A rotation's header and material. */
export interface RotationRow {
  id: string;
  schedule: string;
  /** `paused`: nothing new is sent, acknowledgements are still recorded; `aborted`: stopped by an operator, resumable. */
  status: RotationStatusName;
  unsafe: boolean;
  distribution: string;
  newRoot: string;
  createdAt: string;
  updatedAt: string;
  error: string | null;
}

/** The tables as first made (schema version 1). */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('server','client')),
  common_name TEXT NOT NULL, spki BLOB NOT NULL, certificate TEXT NOT NULL,
  next_seq INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS peers (server_id TEXT NOT NULL, client_id TEXT NOT NULL, PRIMARY KEY (server_id, client_id));
CREATE TABLE IF NOT EXISTS rotations (
  id TEXT PRIMARY KEY, schedule TEXT NOT NULL, status TEXT NOT NULL, unsafe INTEGER NOT NULL,
  distribution TEXT NOT NULL, new_root TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS leaves (rotation_id TEXT NOT NULL, device_id TEXT NOT NULL, certificate TEXT NOT NULL, PRIMARY KEY (rotation_id, device_id));
CREATE TABLE IF NOT EXISTS steps (
  rotation_id TEXT NOT NULL, device_id TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL,
  seq INTEGER, attempts INTEGER NOT NULL DEFAULT 0, command TEXT, sent_at TEXT, acked_at TEXT, due_at INTEGER,
  error_code TEXT, error_message TEXT, PRIMARY KEY (rotation_id, device_id, step));
`;

/** A step row's columns under StepRow's names. */
export const STEP_COLS = `rotation_id AS rotationId, device_id AS deviceId, step, status, seq, attempts, command, sent_at AS sentAt,
  acked_at AS ackedAt, due_at AS dueAt, error_code AS errorCode, error_message AS errorMessage`;

/** Columns added after version 1: [table, column, type], in the order they came. */
export const ADDED_COLUMNS: readonly (readonly [table: string, column: string, type: string])[] = [
  ['devices', 'verifies', 'TEXT'],
  ['rotations', 'old_with_new', 'TEXT'],
  ['devices', 'via', 'TEXT'],
  ['rotations', 'push_old_with_new', 'INTEGER'],
  ['devices', 'accepts', 'TEXT'],
];
