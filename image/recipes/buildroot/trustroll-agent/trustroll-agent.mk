################################################################################
#
# trustroll-agent: the prebuilt overlay from 'npm run image -- --arch <arch>'
#
################################################################################

TRUSTROLL_AGENT_RELEASE = 0.1.0
TRUSTROLL_AGENT_ARCH = $(if $(BR2_aarch64),arm64,armv7)
# The version names the CPU: each CPU's tarball has its own legal notice file
# (the runtimes' LICENSE files differ), so each has its hash file, in
# <version>/trustroll-agent.hash.
TRUSTROLL_AGENT_VERSION = $(TRUSTROLL_AGENT_RELEASE)-$(TRUSTROLL_AGENT_ARCH)
TRUSTROLL_AGENT_SOURCE = trustroll-agent-$(TRUSTROLL_AGENT_RELEASE)-linux-$(TRUSTROLL_AGENT_ARCH).tar.gz
TRUSTROLL_AGENT_SITE = file://$(call qstrip,$(BR2_PACKAGE_TRUSTROLL_AGENT_TARBALL_DIR))
# The tarball is built locally ('npm run image'), with its .sha256 beside it;
# its hash changes with every commit, so the hash file holds the licence's only.
BR_NO_CHECK_HASH_FOR += $(TRUSTROLL_AGENT_SOURCE)
# trustroll (Apache-2.0), the Node runtime (MIT, with the libraries built into
# it), the bundled npm packages, SQLite (blessing) in the better-sqlite3 addon:
# every text is in LEGAL.txt, and the SPDX SBOM (opt/trustroll/share/sbom.spdx.json)
# names each component with its version, licence and hashes.
TRUSTROLL_AGENT_LICENSE = Apache-2.0, Artistic-2.0, blessing, BSD-2-Clause, BSD-3-Clause, ISC, MIT
TRUSTROLL_AGENT_LICENSE_FILES = opt/trustroll/LEGAL.txt
# The tarball holds the tree from /, not a top-level folder.
TRUSTROLL_AGENT_STRIP_COMPONENTS = 0

define TRUSTROLL_AGENT_USERS
	trustroll -1 trustroll -1 * /var/lib/trustroll - - trustroll device agent
endef

# Every file goes where the tarball has it, which is where
# /opt/trustroll/MANIFEST.sha256 names it ('sha256sum -c' on the device):
# the recipe adds links, never renames (test/image/recipes-manifest.test.ts).
# Keep Buildroot's strip away from the prebuilt runtime, whose hash is in the
# manifest: BR2_STRIP_EXCLUDE_DIRS="opt/trustroll" in the defconfig.
define TRUSTROLL_AGENT_INSTALL_TARGET_CMDS
	cp -a $(@D)/opt $(@D)/usr $(@D)/var $(@D)/etc $(TARGET_DIR)/
endef

# BusyBox init runs /etc/init.d/S??*: a start link to the script, which stays
# /etc/init.d/trustroll-agent (on a systemd image the native unit of the same
# name wins over the script, which systemd's sysv generator then ignores).
define TRUSTROLL_AGENT_INSTALL_INIT_SYSV
	ln -sf trustroll-agent $(TARGET_DIR)/etc/init.d/S80trustroll-agent
endef

define TRUSTROLL_AGENT_INSTALL_INIT_SYSTEMD
	# the unit is already under /usr/lib/systemd/system; enable it
	mkdir -p $(TARGET_DIR)/etc/systemd/system/multi-user.target.wants
	ln -sf ../../../../usr/lib/systemd/system/trustroll-agent.service $(TARGET_DIR)/etc/systemd/system/multi-user.target.wants/trustroll-agent.service
endef

$(eval $(generic-package))
