/**
 * Runs a target's programs on this host with qemu-user, invoked explicitly
 * (`qemu-aarch64-static -L <sysroot> …`): nothing is registered with
 * binfmt_misc and no foreign libraries or Node replace the host's. The C
 * library comes from the cross toolchain's sysroot (/usr/<triple>), the
 * runtime, bundle and addons from an unpacked image.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { agentNodeFlags, BUNDLE_FILE } from '../cross-compile/bundle.ts';
import { BuildError } from '../cross-compile/errors.ts';
import type { Target } from '../cross-compile/targets.ts';

/** A command line: program and arguments. */
export interface CommandLine {
  command: string;
  args: string[];
}

/** Why the target cannot be emulated here, or null when it can. */
export function emulationUnavailable(target: Target): string | null {
  if (spawnSync(target.qemu, ['--version']).error) return `${target.qemu} is not installed (apt-get install qemu-user-static; bash .ci/setup does)`;
  if (!existsSync(join(target.sysroot, 'lib'))) return `${target.sysroot} is missing (its C library comes with ${target.toolchainPackages.join(', ')})`;
  return null;
}

/** The image's Node under qemu, with `args` after it. */
export function emulatedNode(target: Target, rootfs: string, args: string[]): CommandLine {
  const why = emulationUnavailable(target);
  if (why) throw new BuildError('E_BUILD_TOOL', why);
  return { command: target.qemu, args: ['-L', target.sysroot, join(rootfs, 'opt', 'trustroll', 'bin', 'node'), ...args] };
}

/** `trustroll-agent <args>` from the image, as /usr/bin/trustroll-agent runs it (with its Node flags), under qemu. */
export function emulatedAgent(target: Target, rootfs: string, args: string[]): CommandLine {
  return emulatedNode(target, rootfs, [...agentNodeFlags(target.runtime.version), join(rootfs, 'opt', 'trustroll', 'lib', BUNDLE_FILE), ...args]);
}
