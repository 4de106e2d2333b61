/**
 * Small durable records (trust store, agent state) for devices that may have
 * no writable filesystem. A write is all-or-nothing: after power loss at any
 * instant a read returns either the previous or the new value, never a mix.
 */
export interface RecordStore {
  readonly backend: string;
  /** The last completely written value, or null if never written. */
  read(name: string): Promise<Buffer | null>;
  /** Durably replace the value; resolves only once it survives power loss. */
  write(name: string, value: Buffer): Promise<void>;
  remove(name: string): Promise<void>;
  close(): Promise<void>;
}
