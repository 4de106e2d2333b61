/**
 * What an effect handler gets: the draft record it may change, the step's
 * payload, the device's own public keys (from the HAL), and the time.
 * Handlers are synchronous and pure apart from the draft: all I/O happens
 * before (key lookup) and after (durable save) in the dispatcher.
 */
import type { StepPayload } from '../../protocol/messages/command.ts';
import type { DeviceRecord } from '../device-record.ts';
import type { Effect } from '../../protocol/steps.ts';

/** A key the device holds, by HAL label. */
export interface OwnKey {
  label: string;
  spki: Buffer;
}

/** Input to an effect handler. */
export interface EffectContext {
  readonly draft: DeviceRecord;
  readonly payload: StepPayload;
  /** The active identity's key first, then a pending re-key key if any. */
  readonly ownKeys: readonly OwnKey[];
  readonly now: Date;
}

/** Applies one effect to the draft, or throws a ProtocolError leaving the caller's record untouched. */
export type EffectHandler = (ctx: EffectContext) => void;

/** Registry type: one handler per effect. */
export type EffectHandlers = Readonly<Record<Effect, EffectHandler>>;
