#!/usr/bin/env bash
# make-guest.sh OUTDIR — build the tiny Linux guest used by qemuctl's tests and demo.
#
# Output (see scripts/README-guest.md):
#   OUTDIR/<kernel-version>/vmlinuz      Debian linux-image-<ver>-cloud-amd64 kernel
#   OUTDIR/<kernel-version>/initrd.img   busybox-static initramfs (cpio newc, gzip)
#   OUTDIR/current -> <kernel-version>
# On success prints one line on stdout: the directory holding vmlinuz and initrd.img.
# Everything else goes to stderr.
#
# The kernel package is downloaded with `apt-get download` and unpacked with
# `dpkg -x` into a temporary directory; nothing is installed on the host.
# Re-running with the same resolved kernel does nothing (no download).
set -euo pipefail

export PATH=$PATH:/usr/sbin:/sbin   # modinfo lives in /sbin on Debian
META_PKG=linux-image-cloud-amd64
# Modules the init needs so that the ACPI power button reaches userspace.
WANT_MODULES=(button evdev)

prog=${0##*/}
say()  { printf '%s: %s\n' "$prog" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

if [ $# -ne 1 ] || [ -z "$1" ]; then echo "usage: $prog OUTDIR" >&2; exit 2; fi
mkdir -p -- "$1"
OUTDIR=$(cd -- "$1" && pwd -P)

# ---------------------------------------------------------------------------
# Resolving the kernel package (linux-image-cloud-amd64 -> linux-image-<ver>).

# apt-cache rebuilds its cache on every call when pkgcache is disabled (as in
# Debian container images: ~0.7 s), so the answer is remembered together with
# a fingerprint of apt's package lists and sources; same lists, same answer.
RESOLVED_FILE=$OUTDIR/.resolved

apt_fingerprint() {
    # Sizes and mtimes of everything that decides the candidate version.
    stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* /var/lib/apt/lists/*Release \
        /etc/apt/sources.list /etc/apt/sources.list.d/* \
        /etc/apt/preferences /etc/apt/preferences.d/* 2>/dev/null | cksum | cut -d' ' -f1
}

# Prints the real package name (linux-image-6.1.0-NN-cloud-amd64) or nothing.
apt_resolve() {
    apt-cache depends --no-recommends --no-suggests "$META_PKG" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n1
}

# Uses the newest cached guest when apt cannot give an answer; else fails.
use_cache_or_die() {
    local why=$1 dir
    dir=$(readlink -f -- "$OUTDIR/current" 2>/dev/null || true)
    if [ -z "$dir" ] || [ ! -f "$dir/vmlinuz" ] || [ ! -f "$dir/initrd.img" ]; then
        dir=$(ls -1d "$OUTDIR"/[0-9]*/ 2>/dev/null | sort -V | tail -n1 || true)
        dir=${dir%/}
    fi
    if [ -n "$dir" ] && [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ]; then
        warn "$why; using cached guest ${dir##*/}"
        set_current "${dir##*/}"
        printf '%s\n' "$dir"
        exit 0
    fi
    die "$why, and no cached guest in $OUTDIR"
}

# Atomically points OUTDIR/current at $1.
set_current() {
    local ver=$1
    [ "$(readlink -- "$OUTDIR/current" 2>/dev/null || true)" = "$ver" ] && return 0
    ln -sfn -- "$ver" "$OUTDIR/.current.$$"
    mv -fT -- "$OUTDIR/.current.$$" "$OUTDIR/current"
}

resolve_pkg() {
    local fp pkg=""
    fp=$(apt_fingerprint)
    if [ -f "$RESOLVED_FILE" ]; then
        local cfp cpkg
        read -r cfp cpkg < "$RESOLVED_FILE" || true
        if [ "$cfp" = "$fp" ] && [ -n "${cpkg:-}" ]; then
            printf '%s\n' "$cpkg"
            return 0
        fi
    fi
    pkg=$(apt_resolve)
    if [ -z "$pkg" ]; then
        say "apt does not know $META_PKG; running apt-get update once" >&2
        if apt-get update -qq >&2; then
            fp=$(apt_fingerprint)
            pkg=$(apt_resolve)
        else
            warn "apt-get update failed"
        fi
    fi
    [ -n "$pkg" ] || return 1
    { printf '%s %s\n' "$fp" "$pkg" > "$RESOLVED_FILE.$$" &&
        mv -f -- "$RESOLVED_FILE.$$" "$RESOLVED_FILE"; } 2>/dev/null || rm -f -- "$RESOLVED_FILE.$$"
    printf '%s\n' "$pkg"
}

PKG=$(resolve_pkg) || use_cache_or_die "cannot resolve $META_PKG with apt"
KVER=${PKG#linux-image-}
DEST=$OUTDIR/$KVER

# Fast path: this kernel's guest already exists.
if [ -f "$DEST/vmlinuz" ] && [ -f "$DEST/initrd.img" ]; then
    set_current "$KVER"
    printf '%s\n' "$DEST"
    exit 0
fi

# ---------------------------------------------------------------------------
# Build. One builder per OUTDIR at a time; a second one waits, then finds the
# result already there.
exec 9> "$OUTDIR/.lock"
flock 9
if [ -f "$DEST/vmlinuz" ] && [ -f "$DEST/initrd.img" ]; then
    set_current "$KVER"
    printf '%s\n' "$DEST"
    exit 0
fi
# Leftovers of interrupted runs (we hold the lock, so none is in use).
rm -rf -- "$OUTDIR"/.build.*

WORK=$(mktemp -d "$OUTDIR/.build.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
trap 'exit 130' INT TERM HUP

for tool in busybox cpio gzip dpkg modinfo; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install busybox-static cpio kmod)"
done
BUSYBOX=$(command -v busybox)
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; }
if command -v readelf >/dev/null && ! file_is_static "$BUSYBOX"; then
    if [ -x /bin/busybox ] && file_is_static /bin/busybox; then
        BUSYBOX=/bin/busybox
    else
        die "$BUSYBOX is not statically linked (apt-get install busybox-static)"
    fi
fi

say "downloading $PKG"
mkdir -p "$WORK/deb" "$WORK/pkg"
if ! (cd "$WORK/deb" && apt-get download -q -o APT::Sandbox::User=root "$PKG" >&2); then
    use_cache_or_die "apt-get download $PKG failed"
fi
dpkg -x "$WORK"/deb/*.deb "$WORK/pkg"

KIMG=$WORK/pkg/boot/vmlinuz-$KVER
[ -f "$KIMG" ] || KIMG=$(ls -1 "$WORK"/pkg/boot/vmlinuz-* 2>/dev/null | head -n1)
[ -f "$KIMG" ] || die "$PKG has no boot/vmlinuz-*"
MODDIR=""
for d in "$WORK/pkg/lib/modules/$KVER" "$WORK/pkg/usr/lib/modules/$KVER"; do
    [ -d "$d" ] && MODDIR=$d && break
done
[ -n "$MODDIR" ] || die "$PKG has no lib/modules/$KVER"

# ---------------------------------------------------------------------------
# Modules: skip built-ins, add dependencies first, decompress for busybox insmod.

declare -A MODFILE=()   # module name (with _) -> file
while IFS= read -r f; do
    n=${f##*/}; n=${n%%.ko*}; MODFILE[${n//-/_}]=$f
done < <(find "$MODDIR/kernel" -name '*.ko' -o -name '*.ko.*')

builtin_has() {
    local n=${1//-/_} line b
    [ -f "$MODDIR/modules.builtin" ] || return 1
    while IFS= read -r line; do
        b=${line##*/}; b=${b%%.ko*}
        [ "${b//-/_}" = "$n" ] && return 0
    done < "$MODDIR/modules.builtin"
    return 1
}

LOAD_ORDER=()
declare -A SEEN=()
add_module() {
    local n=${1//-/_} deps d
    [ -n "${SEEN[$n]:-}" ] && return 0
    SEEN[$n]=1
    if builtin_has "$n"; then
        say "module $n is built into the kernel"
        return 0
    fi
    [ -n "${MODFILE[$n]:-}" ] || die "module $n is neither built in nor shipped by $PKG"
    deps=$(modinfo -F depends "${MODFILE[$n]}")
    for d in ${deps//,/ }; do add_module "$d"; done
    LOAD_ORDER+=("$n")
}
for m in "${WANT_MODULES[@]}"; do add_module "$m"; done

# ---------------------------------------------------------------------------
# The initramfs tree.
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,var/log,etc/acpi/PWRF,lib/modules/"$KVER"}
ln -s ../run "$R/var/run"
cp "$BUSYBOX" "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
"$BUSYBOX" --list-full | while IFS= read -r a; do
    case $a in bin/busybox|linuxrc|'') continue ;; esac
    [ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
[ -L "$R/bin/sh" ] || ln -s busybox "$R/bin/sh"

: > "$R/lib/modules/$KVER/load-order"
for n in "${LOAD_ORDER[@]}"; do
    src=${MODFILE[$n]} dst=$R/lib/modules/$KVER/$n.ko
    case $src in
        *.ko)     cp "$src" "$dst" ;;
        *.ko.xz)  xz -dc "$src" > "$dst" ;;
        *.ko.zst) zstd -qdc "$src" > "$dst" ;;
        *.ko.gz)  gzip -dc "$src" > "$dst" ;;
        *) die "unknown module compression: $src" ;;
    esac
    echo "$n.ko" >> "$R/lib/modules/$KVER/load-order"
done

# busybox acpid reads input events from /dev/input/event*, maps them with
# /etc/acpi.map and /etc/acpid.conf to /etc/acpi/<ACTION> and runs that.
cat > "$R/etc/acpi.map" <<'EOF'
# type  type#  code       code#  value  event
EV_KEY  0x01   KEY_POWER  116    1      button/power PWRF 00000080
EOF
cat > "$R/etc/acpid.conf" <<'EOF'
# key   action (file under /etc/acpi)
PWRF    PWRF/00000080
EOF
cat > "$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# ACPI power button (QMP system_powerdown): power the guest off.
exec /sbin/guest-poweroff
EOF
cat > "$R/sbin/guest-poweroff" <<'EOF'
#!/bin/sh
echo QEMUCTL-GUEST-POWEROFF > /dev/console
exec poweroff -f
EOF

cat > "$R/init" <<EOF
#!/bin/sh
# qemuctl test guest init. Kernel command line options:
#   guest.poweroff=1  power off right after QEMUCTL-GUEST-READY
#   guest.shell=1     interactive shell on the console (exit powers off)
#   (default)         idle until the ACPI power button powers the guest off
KVER=$KVER
EOF
cat >> "$R/init" <<'EOF'
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root TERM=vt100
mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys

fail() {
    echo "guest-init: $*"
    /sbin/guest-poweroff
}

quiet=0 poweroff=0 shell=0
for arg in $(cat /proc/cmdline); do
    case $arg in
        quiet) quiet=1 ;;
        guest.poweroff=1) poweroff=1 ;;
        guest.shell=1) shell=1 ;;
    esac
done

while read -r ko; do
    insmod "/lib/modules/$KVER/$ko" || fail "insmod $ko failed"
done < "/lib/modules/$KVER/load-order"

# Wait (up to ~5 s) until the power button has an event device and every
# input event device has its /dev node: acpid opens event0, event1, ... and
# stops at the first missing one.
tries=0
while :; do
    ok=0
    for ev in /sys/class/input/event*; do
        [ -e "$ev" ] || continue
        [ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ] && ok=1
    done
    for ev in /sys/class/input/event*; do
        [ -e "$ev" ] && [ ! -c "/dev/input/${ev##*/}" ] && ok=0
    done
    [ $ok = 1 ] && break
    tries=$((tries + 1))
    [ $tries -ge 500 ] && fail "no power button input device"
    usleep 10000
done

rm -f /run/acpid.pid
acpid -c /etc/acpi -a /etc/acpid.conf -M /etc/acpi.map -l /var/log/acpid.log -p /run/acpid.pid ||
    fail "acpid failed to start"
# acpid writes its pid file once it listens on all event devices.
tries=0
until [ -s /run/acpid.pid ]; do
    tries=$((tries + 1))
    [ $tries -ge 500 ] && fail "acpid did not start"
    usleep 10000
done

# Keep the serial console clean for the tests (dmesg still has everything).
[ $quiet = 1 ] && echo 1 > /proc/sys/kernel/printk

echo QEMUCTL-GUEST-READY

if [ $poweroff = 1 ]; then
    /sbin/guest-poweroff
elif [ $shell = 1 ]; then
    export PS1='guest# '
    cd /root || cd /
    setsid cttyhack sh
    /sbin/guest-poweroff
fi
while :; do sleep 3600; done
EOF
chmod 0755 "$R/init" "$R/sbin/guest-poweroff" "$R/etc/acpi/PWRF/00000080"

# ---------------------------------------------------------------------------
# Pack and publish atomically.
STAGE=$WORK/out
mkdir -p "$STAGE"
find "$R" -exec touch -h -d @0 {} +   # same inputs, same bytes
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n > "$STAGE/initrd.img"
cp "$KIMG" "$STAGE/vmlinuz"
{
    echo "package=$PKG"
    echo "package_version=$(dpkg-deb -f "$WORK"/deb/*.deb Version)"
    echo "kernel=$KVER"
    echo "modules=${LOAD_ORDER[*]}"
} > "$STAGE/guest.info"
chmod 0644 "$STAGE"/*

rm -rf -- "$DEST"          # only a broken leftover can be here (checked above)
mv -T -- "$STAGE" "$DEST"  # rename(2): the directory appears complete or not at all
set_current "$KVER"
say "built guest $KVER"
printf '%s\n' "$DEST"
