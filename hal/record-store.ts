/**
 * Small durable records (trust store, agent state) for devices that may have
 * no writable filesystem. A write is all-or-nothing: after power loss at any
 * instant a read returns either the previous or the new value, never a mix.
 */
export interface RecordStore {
  readonly backend: string;
  /**
   * Whether the store can tell that what it returns is older than what was
   * written (a roll-back, e.g. the newest EEPROM slot damaged); absent when
   * the backend cannot detect it (see docs/hal.md).
   */
  integrity?(): RecordStoreIntegrity;
  /** Bytes a value under `name` may take now (a bounded store); absent when unbounded. */
  room?(name: string): number;
  /** The last completely written value, or null if never written. */
  read(name: string): Promise<Buffer | null>;
  /** Durably replace the value; resolves only once it survives power loss. */
  write(name: string, value: Buffer): Promise<void>;
  remove(name: string): Promise<void>;
  close(): Promise<void>;
}

/** A record store's roll-back report (see RecordStore.integrity). */
export interface RecordStoreIntegrity {
  /** True while the data in use is older than the newest committed write. */
  rolledBack: boolean;
  /** Writes lost when the store was opened (0: none). */
  lostWrites: number;
  /** Writes still to be made again before the store is back at its committed generation. */
  missingWrites: number;
  /** Generation in use at open and the highest committed (null: not known). */
  loadedGeneration: number;
  committedGeneration: number | null;
  /** One line for logs and the technician: what was found, without record contents. */
  detail: string;
}
