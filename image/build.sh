#!/usr/bin/env bash
# Builds the streambox appliance image from distribution packages only:
#   OUT/streambox-VERSION-amd64.img.zst   raw GPT disk (dd, Etcher, bmaptool --nobmap)
#   OUT/streambox-VERSION-amd64.qcow2     the same disk for Proxmox, virt-manager, QEMU
#   OUT/streambox-VERSION-amd64.packages  every package and version in the image
#
# Run as root on an ordinary Debian or Ubuntu machine; needs no loop devices and no
# mounts of its own (mmdebstrap builds the root tree; mkfs.ext4 -d, mtools and sfdisk
# assemble the disk). Usage:
#   OUT/streambox-VERSION-amd64.raucb     the update bundle of the same root (RAUC, signed)
#
#   image/build.sh [--distribution ubuntu|debian] [--flavour shipped|test]
#                  [--deb FILE] [--out DIR] [--keep-raw] [--size MIB] [--tree-only]
#                  [--release VERSION] [--signing DIR]
# --flavour test adds the QEMU guest agent, the test's way in (image/test.sh); the
# shipped image has no way in at all. --deb takes a built package instead of running
# `cargo deb`. --size makes the disk that many MiB (the data partition takes the rest),
# and refuses, with the size needed, one too small for the image. --tree-only stops after
# the checks on the root tree (the boot test checks the shipped flavour so). --release
# is the image's version (default: the service's); --signing the directory of the update
# signing keys (image/bundle.sh --init-signing makes them; default
# ~/.cache/streambox/signing): the image trusts bundles signed with them, and its own
# bundle is. --keep-raw also keeps the root file system image (NAME.root.ext4). Package
# downloads are cached in $STREAMBOX_CACHE (default
# ~/.cache/streambox/image-packages/DISTRIBUTION).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
distribution=ubuntu
flavour=shipped
deb=
out="$repo/image/out"
keep_raw=no
size=
tree_only=no
release=
signing=${STREAMBOX_SIGNING:-$HOME/.cache/streambox/signing}
while [ $# -gt 0 ]; do
    case "$1" in
    --distribution) distribution=$2; shift 2 ;;
    --flavour) flavour=$2; shift 2 ;;
    --deb) deb=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep-raw) keep_raw=yes; shift ;;
    --size) size=$2; shift 2 ;;
    --tree-only) tree_only=yes; shift ;;
    --release) release=$2; shift 2 ;;
    --signing) signing=$2; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# The two distributions differ only in this table.
#               suite     mirror                              components     kernel
case "$distribution" in
debian) set -- bookworm http://deb.debian.org/debian main linux-image-amd64 ;;
ubuntu) set -- noble http://archive.ubuntu.com/ubuntu main,universe linux-image-generic ;;
*) echo "build.sh: --distribution must be ubuntu or debian" >&2; exit 2 ;;
esac
suite=$1 mirror=$2 components=$3 kernel=$4
case "$flavour" in shipped | test) ;; *) echo "build.sh: --flavour must be shipped or test" >&2; exit 2 ;; esac
if [ -n "$size" ] && ! [[ "$size" =~ ^[0-9]+$ ]]; then echo "build.sh: --size is a number of MiB" >&2; exit 2; fi

fail() { echo "build.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap builds the root tree as root)"

# Host tools, with the Debian/Ubuntu package that has each.
missing=()
for t in mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs mkfs.vfat:dosfstools mcopy:mtools \
    sfdisk:fdisk qemu-img:qemu-utils zstd:zstd systemd-analyze:systemd rauc:rauc \
    mksquashfs:squashfs-tools openssl:openssl debugfs:e2fsprogs; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t%%:*} (package ${t#*:})")
done
[ ${#missing[@]} = 0 ] || fail "missing tools: ${missing[*]}"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/appliance/Cargo.toml" | head -1)
[ -n "$release" ] || release=$version
name="streambox-$release-amd64"
work="$out/work"
cache=${STREAMBOX_CACHE:-$HOME/.cache/streambox/image-packages/$distribution}
# mmdebstrap mounts /proc, /sys and /dev inside the tree while it runs: never delete
# through a mount an interrupted build left behind.
clean_work() {
    if grep -q " $work/" /proc/mounts; then
        fail "file systems are still mounted under $work (an interrupted build?); unmount them first"
    fi
    rm -rf --one-file-system "$work"
}
clean_work
mkdir -p "$work" "$out" "$cache"
started=$(date +%s)
step() { echo "== $(($(date +%s) - started)) s: $*"; }

# 1. The service as a .deb (cargo-deb), unless one was given.
if [ -z "$deb" ]; then
    step "building the .deb (cargo deb, release)"
    cargo_deb=$(command -v cargo-deb || echo "$HOME/.cache/streambox/tools/bin/cargo-deb")
    [ -x "$cargo_deb" ] || fail "missing cargo-deb: cargo install cargo-deb --locked --version 3.8.0"
    (cd "$repo" && "$cargo_deb" -p streambox --strip --output "$work/") >"$work/cargo-deb.log" 2>&1 ||
        { tail -20 "$work/cargo-deb.log"; fail "cargo deb failed"; }
    deb=$(ls "$work"/streambox_*.deb)
fi
[ -f "$deb" ] || fail "no such package: $deb"
cp "$deb" "$work/streambox.deb"

# 2. The root tree.
packages=$(grep -v '^\s*#' "$here/packages.list" | sed "s/@KERNEL@/$kernel/" | xargs)
[ "$flavour" = test ] && packages="$packages qemu-guest-agent"
step "root tree: mmdebstrap $suite from $mirror"
tree="$work/tree"
if ! mmdebstrap --variant=minbase --format=directory --components="$components" \
    --include="${packages// /,}" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $cache /var/cache/apt/archives/" \
    --customize-hook="copy-in $work/streambox.deb /tmp/" \
    --customize-hook='chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/streambox.deb' \
    --customize-hook="sync-out /var/cache/apt/archives $cache" \
    --customize-hook="$here/customize.sh \"\$1\" $repo" \
    "$suite" "$tree" "$mirror" >"$work/mmdebstrap.log" 2>&1; then
    tail -15 "$work/mmdebstrap.log" >&2
    if grep -q "Unable to locate package" "$work/mmdebstrap.log"; then
        fail "missing packages in $suite: $(grep -o 'Unable to locate package [^ ]*' "$work/mmdebstrap.log" | awk '{print $5}' | sort -u | xargs)"
    fi
    if grep -Eq "Could not resolve|Could not connect|Failed to fetch|Temporary failure resolving|Network is unreachable|Unable to connect" "$work/mmdebstrap.log"; then
        fail "cannot download from $mirror (no network?); see $work/mmdebstrap.log"
    fi
    fail "mmdebstrap failed; see $work/mmdebstrap.log"
fi
rm -f "$cache"/lock
rm -rf "$cache"/partial

# 2b. The image's release, and the keyring its RAUC checks bundles against.
"$here/bundle.sh" --init-signing "$signing"
printf 'VERSION=%s\n' "$release" >"$tree/usr/lib/streambox/release"
install -m 644 "$signing/ca.pem" "$tree/etc/rauc/keyring.pem"

# 3. Gates on the tree: the unit's exposure, and what must not be in the image.
step "checking the tree"
systemd-analyze security --offline=yes --root="$tree" --threshold=20 streambox.service \
    >"$work/exposure.txt" 2>&1 || { cat "$work/exposure.txt"; fail "streambox.service is exposed above 2.0"; }
tail -1 "$work/exposure.txt"
for forbidden in usr/bin/gcc usr/bin/cc usr/bin/sshd usr/sbin/sshd; do
    [ ! -e "$tree/$forbidden" ] || fail "the image must not contain /$forbidden"
done
if [ "$flavour" = shipped ] && [ -e "$tree/usr/sbin/qemu-ga" ]; then
    fail "the shipped image must not contain the guest agent"
fi
[ -z "$(ls -A "$tree/var/cache/apt/archives" 2>/dev/null | grep -v -e '^partial$' -e '^lock$')" ] ||
    fail "package caches left in the tree"
chroot "$tree" dpkg-query -W -f '${Package}\t${Version}\n' >"$out/$name.packages"
if grep -q '^root::' "$tree/etc/shadow"; then fail "root has an empty password"; fi
if [ "$tree_only" = yes ]; then
    clean_work
    step "the $flavour tree passed its checks"
    exit 0
fi

# 4. The partitions, each made from its directory without mounting.
step "partitions"
kver=$(ls "$tree/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
[ -n "$kver" ] || fail "no kernel in the tree"
mib() { echo $((($(du -s --block-size=1M "$1" | cut -f1) * 13 / 10 + 64) / 64 * 64)); }
esp_mib=256 state_mib=32 data_mib=256
root_mib=$(mib "$tree")
[ "$root_mib" -ge 1024 ] || root_mib=1024
# The boot files live on the ESP (systemd-boot reads only FAT); one set per slot.
esp="$work/esp.img"
mkfs.vfat -C -F 32 -n STREAMBOX "$esp" $((esp_mib * 1024)) >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/streambox-a ::/streambox-b
efi="$tree/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
mcopy -i "$esp" "$efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$efi" ::/EFI/systemd/systemd-bootx64.efi
mcopy -i "$esp" "$tree/boot/vmlinuz-$kver" ::/streambox-a/vmlinuz
mcopy -i "$esp" "$tree/boot/initrd.img-$kver" ::/streambox-a/initrd.img
# systemd-boot boots the first entry by its order: entries with tries left before those
# without (boot counting), then by sort-key. RAUC's bootloader backend
# (/usr/lib/streambox/rauc-bootloader) writes slot B's entry the same way.
cat >"$work/loader.conf" <<EOF
default streambox-*
timeout 0
editor no
console-mode keep
EOF
cat >"$work/streambox-a.conf" <<EOF
title   streambox $release (slot A)
version $release
sort-key 1
linux   /streambox-a/vmlinuz
initrd  /streambox-a/initrd.img
options root=PARTLABEL=root-a ro rootfstype=ext4 rootwait rauc.slot=a console=tty1 console=ttyS0,115200n8 systemd.show_status=auto
EOF
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/streambox-a.conf" ::/loader/entries/streambox-a.conf
# /var goes to the data partition; the root keeps an empty mount point.
data_tree="$work/data"
state_tree="$work/state"
mv "$tree/var" "$data_tree"
mkdir -p "$tree/var" "$state_tree/tls"
uid=$(awk -F: '$1 == "streambox" { print $3 ":" $4 }' "$tree/etc/passwd")
[ -n "$uid" ] || fail "the .deb did not create the streambox user"
chown "$uid" "$state_tree/tls"
chmod 0700 "$state_tree/tls"
# Reserved for SSH host keys, when SSH with keys pasted in the admin pages is offered.
mkdir -m 0700 "$state_tree/ssh"
{
    mkfs.ext4 -q -F -L root-a -d "$tree" -E root_owner=0:0 "$work/root-a.img" "${root_mib}M"
    mkfs.ext4 -q -F -L root-b "$work/root-b.img" "${root_mib}M"
    mkfs.ext4 -q -F -L state -d "$state_tree" -E root_owner=0:0 "$work/state.img" "${state_mib}M"
    mkfs.ext4 -q -F -L data -d "$data_tree" -E root_owner=0:0 "$work/data.img" "${data_mib}M"
} >"$work/mkfs.log" 2>&1 || { cat "$work/mkfs.log"; fail "making the file systems failed"; }

# 4b. The update bundle of this root.
step "update bundle"
"$here/bundle.sh" "$work/root-a.img" "$out/$name.raucb" --version "$release" --signing "$signing" \
    >"$work/bundle.log" 2>&1 || { cat "$work/bundle.log"; fail "making the update bundle failed"; }

# 5. The disk: GPT with ESP, two root slots, state, and data last (it grows).
step "disk"
total_mib=$((1 + esp_mib + 2 * root_mib + state_mib + data_mib + 1))
if [ -n "$size" ]; then
    [ "$size" -ge "$total_mib" ] || fail "a disk of $size MiB is too small for this image: it needs at least $total_mib MiB"
    data_mib=$((data_mib + size - total_mib))
    total_mib=$size
fi
raw="$work/$name.img"
rm -f "$raw"
truncate -s "${total_mib}M" "$raw"
sfdisk --quiet "$raw" <<EOF
label: gpt
first-lba: 2048
size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=${root_mib}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root-a
size=${root_mib}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root-b
size=${state_mib}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=state
size=${data_mib}MiB, type=4D21B016-B534-45C2-A9FB-5C16E091FD2D, name=data
EOF
offset=1
for part in esp root-a root-b state data; do
    dd if="$work/$part.img" of="$raw" bs=1M seek=$offset conv=notrunc,sparse status=none
    offset=$((offset + $(stat -c %s "$work/$part.img") / 1048576))
done

# 6. The deliverables.
step "compressing"
rm -f "$out/$name.img.zst" "$out/$name.qcow2"
qemu-img convert -f raw -O qcow2 "$raw" "$out/$name.qcow2"
zstd -q -T0 -10 "$raw" -o "$out/$name.img.zst"
if [ "$keep_raw" = yes ]; then
    mv "$raw" "$out/$name.img"
    mv "$work/root-a.img" "$out/$name.root.ext4"
fi
clean_work
step "done: $(du -h "$out/$name.img.zst" | cut -f1) compressed, ${total_mib} MiB raw"
ls -l "$out"
