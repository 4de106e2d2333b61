SUMMARY = "trustroll device agent: root CA rotation for mutual-TLS devices"
DESCRIPTION = "Prebuilt overlay from 'npm run image -- --arch <arch>': Node runtime, agent bundle and native addons under /opt/trustroll, systemd unit and SysV init script."
LICENSE = "Apache-2.0 & MIT"
LIC_FILES_CHKSUM = "file://opt/trustroll/share/licenses/node.LICENSE;md5=${NODE_LICENSE_MD5}"
# md5sum of opt/trustroll/share/licenses/node.LICENSE in the tarball you ship.
NODE_LICENSE_MD5 ?= "set-me"

TRUSTROLL_ARCH ?= "${@ 'arm64' if d.getVar('TARGET_ARCH') == 'aarch64' else 'armv7'}"
SRC_URI = "file://trustroll-agent-${PV}-linux-${TRUSTROLL_ARCH}.tar.gz;subdir=${BP}/overlay"
S = "${WORKDIR}/${BP}/overlay"

COMPATIBLE_HOST = "(aarch64|arm).*-linux"
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

do_install() {
    cp -R --no-preserve=ownership ${S}/. ${D}/
    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        [ "${D}/usr/lib/systemd/system" = "${D}${systemd_system_unitdir}" ] || mv ${D}/usr/lib/systemd/system/trustroll-agent.service ${D}${systemd_system_unitdir}/
    fi
    if ! ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        rm -rf ${D}${sysconfdir}/init.d
    fi
}

FILES:${PN} = "/opt/trustroll /usr/bin/trustroll-agent ${sysconfdir} /var/lib/trustroll ${systemd_system_unitdir} /usr/lib/systemd"
INSANE_SKIP:${PN} = "already-stripped ldflags file-rdeps"
