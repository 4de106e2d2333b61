/**
 * Size limits both sides enforce before parsing, so a hostile or broken
 * broker cannot make a device allocate without bound.
 */

/** Largest command or acknowledgement accepted, in bytes of UTF-8 JSON. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/** Largest single PEM certificate accepted (RSA-4096 with extensions is ~2.5 KiB). */
export const MAX_PEM_BYTES = 16 * 1024;

/**
 * How many past command results a device keeps to answer redeliveries. The
 * manager keeps one step in flight per device, so a redelivery is one of the
 * last few commands; older ones are answered E_REPLAY and change nothing.
 * Bounded so the device record has a fixed size for the device's life (an
 * EEPROM slot; see docs/hal.md "Record budget").
 */
export const RESULT_HISTORY = 8;
