SUMMARY = "trustroll device agent: root CA rotation for mutual-TLS devices"
DESCRIPTION = "Prebuilt overlay from 'npm run image -- --arch <arch>': Node runtime, agent bundle and native addons under /opt/trustroll, systemd unit and SysV init script."
# What the overlay holds: trustroll (Apache-2.0), the Node runtime (MIT, with the
# libraries built into it), the npm packages bundled into the agent and SQLite
# (PD) in the better-sqlite3 addon. Every text is in /opt/trustroll/LEGAL.txt; the
# SPDX SBOM beside it (/opt/trustroll/share/sbom.spdx.json) lists each component
# with its version, licence and hashes.
LICENSE = "Apache-2.0 & Artistic-2.0 & BSD-2-Clause & BSD-3-Clause & ISC & MIT & PD"
# md5 of LEGAL.txt in the tarball of each CPU (the runtimes' LICENSE files
# differ). A dependency or runtime update changes it: do_populate_lic then
# stops until it is reviewed and updated here (test/image checks these lines
# against the image it builds).
LIC_FILES_CHKSUM = "file://opt/trustroll/LEGAL.txt;md5=${TRUSTROLL_LEGAL_MD5}"
TRUSTROLL_LEGAL_MD5:aarch64 = "e3e8319bf57265f9218c7d60e1160382"
TRUSTROLL_LEGAL_MD5:arm = "698feeb0ce561f50776d2317be9b4a2f"

TRUSTROLL_ARCH ?= "${@ 'arm64' if d.getVar('TARGET_ARCH') == 'aarch64' else 'armv7'}"
SRC_URI = "file://trustroll-agent-${PV}-linux-${TRUSTROLL_ARCH}.tar.gz;subdir=${BP}/overlay"
S = "${WORKDIR}/${BP}/overlay"

COMPATIBLE_HOST = "(aarch64|arm).*-linux"
# The runtime and the addons need glibc >= 2.34 and the libstdc++ of GCC >= 11
# (GLIBC_2.34, GLIBCXX_3.4.29: image/README.md). Yocto's file-rdeps check
# holds the image to that: on an older glibc it stops the build with
# "requires libc.so.6(GLIBC_2.34)" instead of the agent failing on the device.
RDEPENDS:${PN} = "libstdc++"

inherit useradd systemd update-rc.d

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system trustroll"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /var/lib/trustroll --shell /bin/false --gid trustroll trustroll"

SYSTEMD_SERVICE:${PN} = "trustroll-agent.service"
INITSCRIPT_NAME = "trustroll-agent"
INITSCRIPT_PARAMS = "defaults 80"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

# Every file stays where the tarball has it, which is where
# /opt/trustroll/MANIFEST.sha256 names it ('sha256sum -c' on the device): the
# recipe adds links, never moves or removes (test/image/recipes-manifest.test.ts).
# Without usrmerge systemd.bbclass looks for the unit in /lib/systemd/system:
# a relative link there (systemd reads /usr/lib/systemd/system too). The init
# script stays on a systemd-only image (the native unit of the same name wins;
# update-rc.d makes no start links there).
do_install() {
    cp -R --no-preserve=ownership ${S}/. ${D}/
    if [ "${D}/usr/lib/systemd/system" != "${D}${systemd_system_unitdir}" ]; then
        install -d ${D}${systemd_system_unitdir}
        ln -sf ../../../usr/lib/systemd/system/trustroll-agent.service ${D}${systemd_system_unitdir}/trustroll-agent.service
    fi
}

FILES:${PN} = "/opt/trustroll /usr/bin/trustroll-agent ${sysconfdir} /var/lib/trustroll ${systemd_system_unitdir} /usr/lib/systemd"
# The binaries are prebuilt and shipped stripped (no debug package can be split
# from them). The official armv7 Node binary has a SysV hash table only (no
# GNU_HASH, which the ldflags check looks for); the arm64 one and the addons have one.
# Nor may the package step strip or split them: their hashes are in the manifest.
INHIBIT_PACKAGE_STRIP = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"
INSANE_SKIP:${PN} = "already-stripped"
INSANE_SKIP:${PN}:append:arm = " ldflags"
