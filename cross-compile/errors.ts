/**
 * Errors of the build tools (cross-compile/, image/): each carries a code a
 * script can match and a message that says what to install or fix. They
 * happen on the build machine, never on a device, so they are kept apart
 * from the product's registries in docs/errors.md.
 */

export const BUILD_ERRORS = {
  E_BUILD_ARCH: 'Unknown --arch: give one of the listed targets.',
  E_BUILD_TOOL: 'A build tool is missing (cross compiler, node-gyp, tar, qemu): run `bash .ci/setup`.',
  E_BUILD_RUNTIME: 'The Node runtime package could not be fetched or does not match its pinned integrity: check npm registry access and cross-compile/targets.ts.',
  E_BUILD_ADDON: 'A native addon failed to cross-compile or is not an ELF file for the target CPU: read the compiler output in cross-compile/out/<arch>/build/<addon>.log.',
  E_BUILD_DIST: 'tsc could not compile the sources into dist/ or the compiled files still name .ts sources: read the compiler messages.',
  E_BUILD_BUNDLE: 'The agent bundle failed to build or pulls in code it must not (the manager\'s): read the esbuild messages.',
  E_BUILD_IMAGE: 'The image could not be assembled or packed: read the message; the output folder is left as it was.',
  E_BUILD_SOURCE: 'The build cannot tell its commit time: build from a git checkout or set SOURCE_DATE_EPOCH (whole seconds).',
  E_BUILD_LICENSE: 'A component the image ships has no licence text or no SBOM entry: add the package\'s licence file (image/licenses/<package>.LICENSE when the package ships none) or fix the component list.',
  E_BUILD_FLOOR: 'A shipped ELF file needs a newer glibc/libstdc++ symbol version than the documented floor (cross-compile/targets.ts, image/README.md): raise the floor in both, or build it against an older C library.',
} as const;

export type BuildErrorCode = keyof typeof BUILD_ERRORS;

/** A build failure with a matchable code. */
export class BuildError extends Error {
  constructor(readonly code: BuildErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'BuildError';
  }
}
