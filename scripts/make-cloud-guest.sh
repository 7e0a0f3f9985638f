#!/usr/bin/env bash
# make-cloud-guest.sh OUTDIR — build the Debian 12 cloud guest used by qemuctl's cloud-image tests.
#
# Output (see scripts/README-cloud-guest.md):
#   OUTDIR/<recipe>/disk.qcow2   ext4 root file system on the whole disk (no partition table, no
#                                bootloader): boot it with -kernel/-initrd and root=/dev/vda
#   OUTDIR/<recipe>/vmlinuz      the guest's own kernel (linux-image-cloud-amd64)
#   OUTDIR/<recipe>/initrd.img   its initramfs (initramfs-tools, virtio and ext4 modules only)
#   OUTDIR/<recipe>/cmdline      the kernel command line to pass with -append
#   OUTDIR/<recipe>/guest.info   what was built, from which packages, and how long it took
#   OUTDIR/current -> <recipe>
# <recipe> names this script's content (a hash), so editing the recipe builds a new guest; an
# existing guest is never rebuilt. On success prints one line on stdout: the directory. Everything
# else goes to stderr.
#
# The guest: Debian 12 (bookworm) from deb.debian.org by mmdebstrap, no recommends, with
# systemd, cloud-init (datasource NoCloud only, then None; no package updates at boot; no locale
# generation), qemu-guest-agent (started by udev when the org.qemu.guest_agent.0 port appears),
# openssh-server (no host keys in the image: cloud-init makes ed25519 and ecdsa keys at first
# boot) and systemd-networkd (DHCP on the first Ethernet NIC; cloud-init renders it). Timers and
# units a test VM does not need are masked. The default user is cloud-init's `debian`.
#
# Needs root (mmdebstrap --mode=root and a file system image with root-owned files) and the
# Debian packages mmdebstrap, e2fsprogs and qemu-utils (`make deps` installs them).
set -euo pipefail

export PATH=$PATH:/usr/sbin:/sbin
SUITE=bookworm
MIRROR=${CLOUD_GUEST_MIRROR:-http://deb.debian.org/debian}
DISK_SIZE=${CLOUD_GUEST_DISK_SIZE:-3G}
PACKAGES=(
    linux-image-cloud-amd64 initramfs-tools systemd-sysv udev dbus iproute2 isc-dhcp-client
    cloud-init qemu-guest-agent openssh-server sudo e2fsprogs
)

prog=${0##*/}
say()  { printf '%s: %s\n' "$prog" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

if [ $# -ne 1 ] || [ -z "$1" ]; then echo "usage: $prog OUTDIR" >&2; exit 2; fi
mkdir -p -- "$1"
OUTDIR=$(cd -- "$1" && pwd -P)

SELF=$(readlink -f -- "$0")
RECIPE=debian12-$(sha256sum < "$SELF" | cut -c1-12)
DEST=$OUTDIR/$RECIPE

complete() { [ -f "$1/disk.qcow2" ] && [ -f "$1/vmlinuz" ] && [ -f "$1/initrd.img" ] && [ -f "$1/cmdline" ]; }
set_current() {
    [ "$(readlink -- "$OUTDIR/current" 2>/dev/null || true)" = "$RECIPE" ] && return 0
    ln -sfn -- "$RECIPE" "$OUTDIR/.current.$$"
    mv -fT -- "$OUTDIR/.current.$$" "$OUTDIR/current"
}

# Fast path: this recipe's guest exists.
if complete "$DEST"; then
    set_current
    printf '%s\n' "$DEST"
    exit 0
fi

# One builder per OUTDIR at a time; a second one waits, then finds the result.
exec 9> "$OUTDIR/.lock"
flock 9
if complete "$DEST"; then
    set_current
    printf '%s\n' "$DEST"
    exit 0
fi
rm -rf -- "$OUTDIR"/.build.*   # leftovers of interrupted runs (we hold the lock)

[ "$(id -u)" = 0 ] || die "building the cloud guest needs root (mmdebstrap --mode=root; files owned by root in the image)"
for tool in mmdebstrap mkfs.ext4 qemu-img sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install mmdebstrap e2fsprogs qemu-utils)"
done

START=$(date +%s)
WORK=$(mktemp -d "$OUTDIR/.build.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
trap 'exit 130' INT TERM HUP
ROOT=$WORK/root

# ---------------------------------------------------------------------------
# The customisation, run by mmdebstrap inside its setup (proc, sys and dev mounted) with $1 = root.
cat > "$WORK/customize.sh" <<'CUSTOMIZE'
#!/bin/sh
set -eu
R=$1

# The root file system is the whole of /dev/vda; no fsck at boot (the image is made fresh).
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 0\n' > "$R/etc/fstab"
echo debian > "$R/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"

# cloud-init: NoCloud only (then None), nothing fetched or generated that a test VM does not need.
cat > "$R/etc/cloud/cloud.cfg.d/90-qemuctl.cfg" <<'EOF'
# qemuctl cloud test guest (scripts/make-cloud-guest.sh)
datasource_list: [NoCloud, None]
package_update: false
package_upgrade: false
package_reboot_if_required: false
apt:
  preserve_sources_list: true
locale: false
manage_etc_hosts: true
ssh_genkeytypes: [ed25519, ecdsa]
system_info:
  network:
    renderers: [networkd]
    activators: [networkd]
EOF
# growpart is on by default; it does not apply here (no partition table; resizefs still grows
# the file system of a larger overlay). "off" quoted: a bare off is YAML 1.1's false.
cat > "$R/etc/cloud/cloud.cfg.d/91-qemuctl-growpart.cfg" <<'EOF'
growpart:
  mode: "off"
EOF

# Networking: systemd-networkd. cloud-init writes 10-cloud-init-*.network for its fallback (DHCP on
# the first NIC); this file is the same thing when cloud-init's network stage is disabled.
mkdir -p "$R/etc/systemd/network"
cat > "$R/etc/systemd/network/99-qemuctl-dhcp.network" <<'EOF'
[Match]
Type=ether
Name=en* eth*

[Network]
DHCP=yes
EOF
chroot "$R" systemctl enable systemd-networkd.service >/dev/null 2>&1
# Wait for one link only, and not forever.
mkdir -p "$R/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$R/etc/systemd/system/systemd-networkd-wait-online.service.d/qemuctl.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
EOF

# The guest agent: Debian's unit is started by udev when the virtio port appears; allow everything
# (guest-set-vcpus and guest-set-memory-blocks included, which the tests use).
chroot "$R" systemctl enable qemu-guest-agent.service >/dev/null 2>&1 || true

# ssh: host keys come from cloud-init at first boot, never from the image.
rm -f "$R"/etc/ssh/ssh_host_*
# Logins without DNS lookups (the guest has no resolver that answers).
printf 'UseDNS no\n' > "$R/etc/ssh/sshd_config.d/qemuctl.conf"

# Units and timers a short-lived test VM does not need (slow under TCG).
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
         fstrim.timer systemd-timesyncd.service getty@tty1.service remote-fs.target \
         systemd-tmpfiles-clean.timer dpkg-db-backup.timer man-db.timer; do
    chroot "$R" systemctl mask "$u" >/dev/null 2>&1 || true
done

# The guest never runs VMs itself: keep the kvm modules (-cpu max offers vmx/svm) from loading.
printf 'blacklist kvm\nblacklist kvm_intel\nblacklist kvm_amd\n' > "$R/etc/modprobe.d/qemuctl-no-kvm.conf"

# First boot must look like a first boot.
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
rm -rf "$R/var/lib/cloud"/* "$R/var/log/cloud-init"*
rm -rf "$R/var/lib/apt/lists"/* "$R/var/cache/apt"/*.bin "$R/var/cache/apt/archives"/*.deb
CUSTOMIZE
chmod 0755 "$WORK/customize.sh"

# initramfs-tools: the drivers the root device needs, not every driver (smaller, faster under TCG).
# Written before any package is installed (conf.d and hooks/ hold no package's conffiles).
cat > "$WORK/initramfs.sh" <<'SETUP'
#!/bin/sh
set -eu
R=$1
mkdir -p "$R/etc/initramfs-tools/conf.d" "$R/etc/initramfs-tools/hooks"
printf 'MODULES=list\nCOMPRESS=gzip\n' > "$R/etc/initramfs-tools/conf.d/qemuctl.conf"
cat > "$R/etc/initramfs-tools/hooks/qemuctl-virtio" <<'HOOK'
#!/bin/sh
case ${1:-} in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_blk virtio_net virtio_console ext4; do
    manual_add_modules "$m"
    echo "$m" >> "${DESTDIR}/conf/modules"
done
HOOK
chmod 0755 "$R/etc/initramfs-tools/hooks/qemuctl-virtio"
SETUP
chmod 0755 "$WORK/initramfs.sh"

say "mmdebstrap $SUITE from $MIRROR into $ROOT"
mmdebstrap --mode=root --variant=apt --format=directory \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --setup-hook="$WORK/initramfs.sh \"\$1\"" \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --customize-hook="$WORK/customize.sh \"\$1\"" \
    "$SUITE" "$ROOT" "deb $MIRROR $SUITE main" >&2

KIMG=$(ls -1 "$ROOT"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
[ -f "$KIMG" ] || die "no kernel in $ROOT/boot"
KVER=${KIMG##*/vmlinuz-}
IIMG=$ROOT/boot/initrd.img-$KVER
[ -f "$IIMG" ] || die "no initramfs for $KVER in $ROOT/boot"

STAGE=$WORK/out
mkdir -p "$STAGE"
cp -- "$KIMG" "$STAGE/vmlinuz"
cp -- "$IIMG" "$STAGE/initrd.img"
printf 'root=/dev/vda rw console=ttyS0\n' > "$STAGE/cmdline"
{
    echo "recipe=$RECIPE"
    echo "suite=$SUITE"
    echo "kernel=$KVER"
    for p in cloud-init qemu-guest-agent openssh-server systemd; do
        echo "$p=$(chroot "$ROOT" dpkg-query -W -f='${Version}' "$p")"
    done
    echo "rootfs_bytes=$(du -sb --exclude=./proc --exclude=./sys "$ROOT" | cut -f1)"
} > "$STAGE/guest.info"

say "mkfs.ext4 -d (${DISK_SIZE}) and qemu-img convert"
truncate -s "$DISK_SIZE" "$WORK/disk.raw"
mkfs.ext4 -q -F -L cloudroot -E root_owner=0:0 -d "$ROOT" "$WORK/disk.raw" >&2
qemu-img convert -q -f raw -O qcow2 -c "$WORK/disk.raw" "$STAGE/disk.qcow2"
rm -f -- "$WORK/disk.raw"
echo "build_seconds=$(( $(date +%s) - START ))" >> "$STAGE/guest.info"
chmod 0644 "$STAGE"/*

rm -rf -- "$DEST"
mv -T -- "$STAGE" "$DEST"   # rename(2): the guest appears complete or not at all
set_current
# Older recipes' guests are replaced by this one.
for old in "$OUTDIR"/debian12-*; do
    [ "$old" = "$DEST" ] || rm -rf -- "$old"
done
say "built cloud guest $RECIPE ($(( $(date +%s) - START )) s)"
printf '%s\n' "$DEST"
