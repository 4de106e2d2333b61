/**
 * Signed checkpoints of the audit chain's head, in the signed-note format
 * of Certificate Transparency's successors (C2SP `signed-note` and
 * `tlog-checkpoint`, the format Sigstore Rekor and the Go checksum
 * database publish their heads in):
 *
 *   trustroll-audit/3f9c0a1b2c3d4e5f        origin: names the log (and its key)
 *   412                                     size: entries #1..#412 are covered
 *   q1w2...base64 of the 32-byte hash=      head: the hash of entry #412
 *   time 2026-11-24T10:15:00.000Z           extension line: when it was signed
 *                                           (blank line)
 *   — trustroll-audit/3f9c0a1b2c3d4e5f AbCd...base64(key hash || signature)
 *
 * The signature is Ed25519 over the text above the blank line, the key hash
 * the first 4 bytes of SHA-256(name, "\n", 0x01, public key), exactly as the
 * signed-note specification defines them, so a note can also be checked
 * with Go's golang.org/x/mod/sumdb/note and the verifier key `vkey` prints.
 * The key's name is the origin: `trustroll-audit/` and the first 16 hex
 * digits of SHA-256 over the raw public key.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { AUDIT_GENESIS } from './audit-log.ts';
import { ManagerError } from '../errors.ts';

/** What a checkpoint states: the log named `origin` had `size` entries, the last with hash `head` (hex), at `time`. */
export interface AuditCheckpoint {
  origin: string;
  size: number;
  head: string;
  time: string;
}

/** The Ed25519 signature type of the signed-note format. */
const ALG_ED25519 = 0x01;
const DASH = '\u2014';

/** The 32 raw bytes of an Ed25519 public key (or of the public half of a private key). */
function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== 'ed25519') throw new ManagerError('E_AUDIT_CHECKPOINT_KEY', `the audit checkpoint key must be Ed25519, this one is ${pub.asymmetricKeyType}`);
  return (pub.export({ type: 'spki', format: 'der' }) as Buffer).subarray(-32);
}

/** The key's name, which is also the origin of the checkpoints it signs. */
export function checkpointKeyName(key: KeyObject): string {
  return `trustroll-audit/${createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, 16)}`;
}

/** The signed-note key hash: SHA-256(name "\n" 0x01 pubkey), first 4 bytes. */
function keyHash(name: string, raw: Buffer): Buffer {
  return createHash('sha256').update(name).update('\n').update(Buffer.from([ALG_ED25519])).update(raw).digest().subarray(0, 4);
}

/** A verifier key in the signed-note notation: "name+hash+base64(0x01 || pubkey)". */
export function noteVerifierKey(name: string, key: KeyObject): string {
  const raw = rawPublicKey(key);
  return `${name}+${keyHash(name, raw).toString('hex')}+${Buffer.concat([Buffer.from([ALG_ED25519]), raw]).toString('base64')}`;
}

/** The audit key's verifier key, for Go's golang.org/x/mod/sumdb/note (`note.NewVerifier`). */
export function checkpointVerifierKey(key: KeyObject): string {
  return noteVerifierKey(checkpointKeyName(key), key);
}

/** Sign `text` (lines ending in a newline) as a signed note by `name`: the text, a blank line, the signature line. */
export function signNote(text: string, name: string, privateKey: KeyObject): string {
  if (!text.endsWith('\n') || text.includes('\n\n')) throw new ManagerError('E_AUDIT_CHECKPOINT_INVALID', 'a note\'s text is non-empty lines, each ending in a newline');
  const sig = sign(null, Buffer.from(text), privateKey);
  return `${text}\n${DASH} ${name} ${Buffer.concat([keyHash(name, rawPublicKey(privateKey)), sig]).toString('base64')}\n`;
}

/** The note text a checkpoint's signature covers. */
function noteText(c: AuditCheckpoint): string {
  return `${c.origin}\n${c.size}\n${Buffer.from(c.head, 'hex').toString('base64')}\ntime ${c.time}\n`;
}

/** Sign a checkpoint of the chain head with the audit key: the whole signed note, ending in a newline. */
export function signCheckpoint(c: Omit<AuditCheckpoint, 'origin'>, privateKey: KeyObject): string {
  if (!Number.isSafeInteger(c.size) || c.size < 0 || !/^[0-9a-f]{64}$/.test(c.head)) throw new ManagerError('E_AUDIT_CHECKPOINT_INVALID', `cannot sign size ${c.size} head ${c.head}`);
  const name = checkpointKeyName(privateKey);
  return signNote(noteText({ ...c, origin: name }), name, privateKey);
}

/** Split a note into its checkpoint fields (unchecked) and signature lines; E_AUDIT_CHECKPOINT_INVALID when malformed. */
function parseNote(note: string): { text: string; checkpoint: AuditCheckpoint; sigs: { name: string; hash: Buffer; sig: Buffer }[] } {
  const bad = (why: string) => new ManagerError('E_AUDIT_CHECKPOINT_INVALID', `not a trustroll audit checkpoint: ${why}`);
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) throw bad('no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const lines = text.slice(0, -1).split('\n');
  const [origin, size, head, time] = lines;
  if (lines.length !== 4 || !origin || !/^(0|[1-9]\d{0,15})$/.test(size ?? '') || !/^[A-Za-z0-9+/]{43}=$/.test(head ?? '') || !/^time \d{4}-\d\d-\d\dT[\d:.]+Z$/.test(time ?? '')) {
    throw bad('expected an origin, a size, a base64 SHA-256 head and a time line');
  }
  const sigs = note.slice(split + 2, -1).split('\n').map((l) => {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(l);
    if (!m) throw bad(`signature line "${l.slice(0, 80)}"`);
    const raw = Buffer.from(m[2]!, 'base64');
    if (raw.length < 5) throw bad('signature too short');
    return { name: m[1]!, hash: raw.subarray(0, 4), sig: raw.subarray(4) };
  });
  return { text, sigs, checkpoint: { origin, size: Number(size), head: Buffer.from(head!, 'base64').toString('hex'), time: time!.slice(5) } };
}

/**
 * Check that `note` is a checkpoint signed by `publicKey` and return what it
 * states. E_AUDIT_CHECKPOINT_KEY when no signature line is by this key (a
 * checkpoint made with another key, or the wrong public key file);
 * E_AUDIT_CHECKPOINT_INVALID when it is malformed or its signature does not
 * verify (the note was altered after signing).
 */
export function openCheckpoint(note: string, publicKey: KeyObject): AuditCheckpoint {
  const { text, checkpoint, sigs } = parseNote(note);
  const name = checkpointKeyName(publicKey);
  const hash = keyHash(name, rawPublicKey(publicKey));
  const mine = sigs.find((s) => s.name === name && s.hash.equals(hash));
  if (!mine) {
    const by = sigs.map((s) => `${s.name} (${s.hash.toString('hex')})`).join(', ');
    throw new ManagerError('E_AUDIT_CHECKPOINT_KEY', `checkpoint of ${checkpoint.size} entries (${checkpoint.time}) is signed by ${by}, not by the audit key ${name} (${hash.toString('hex')})`);
  }
  if (!verify(null, Buffer.from(text), publicKey, mine.sig)) {
    throw new ManagerError('E_AUDIT_CHECKPOINT_INVALID', `checkpoint of ${checkpoint.size} entries (${checkpoint.time}): the signature by ${name} does not verify; the note was altered after it was signed`);
  }
  if (checkpoint.origin !== name) throw new ManagerError('E_AUDIT_CHECKPOINT_INVALID', `checkpoint origin ${checkpoint.origin} is not the audit key's name ${name}`);
  if (checkpoint.size === 0 && checkpoint.head !== AUDIT_GENESIS) throw new ManagerError('E_AUDIT_CHECKPOINT_INVALID', 'an empty log\'s checkpoint must name the genesis hash');
  return checkpoint;
}

/** Read what a note states without checking its signature (file names, sorting); null when malformed. */
export function peekCheckpoint(note: string): AuditCheckpoint | null {
  try {
    return parseNote(note).checkpoint;
  } catch {
    return null;
  }
}
