#!/usr/bin/env bash
# Makes a RAUC update bundle (verity format, signed) from a root file system image:
#   image/bundle.sh ROOT.ext4 OUT.raucb --version V [--signing DIR]
#                   [--put SRC:/PATH]... [--rm /PATH]... [--compatible C]
# The bundle installs ROOT.ext4 to the system slot that is not running (see
# image/rootfs/etc/rauc/system.conf). Its version is V, and so is the release file of the
# root it carries (/usr/lib/streambox/release). --put and --rm change a copy of the root
# first (files written or removed with debugfs, no mount): the boot test makes its
# bundles that way; --compatible (default streambox-amd64, what the image's RAUC
# accepts) makes one for another system, as the test does to see it refused. Also:
#   image/bundle.sh --init-signing DIR
# makes the signing keys in DIR when they are not there: a certificate authority
# (ca.pem, which the image carries as RAUC's keyring) and a signing certificate it issued
# (signing.pem, signing.key). DIR defaults to ~/.cache/streambox/signing; keep it out of
# the repository, and keep it: bundles signed with another key are refused by boxes
# built with this one.
set -euo pipefail

fail() { echo "bundle.sh: $*" >&2; exit 1; }
signing=${STREAMBOX_SIGNING:-$HOME/.cache/streambox/signing}
compatible=streambox-amd64

init_signing() {
    local dir=$1
    [ -f "$dir/ca.pem" ] && [ -f "$dir/signing.pem" ] && [ -f "$dir/signing.key" ] && return 0
    command -v openssl >/dev/null || fail "missing openssl (package openssl)"
    mkdir -p "$dir"
    chmod 700 "$dir"
    local tmp
    tmp=$(mktemp -d)
    cat >"$tmp/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
O = streambox
CN = streambox update authority
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[signing]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 36500 -config "$tmp/ca.cnf" \
        -extensions ca 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/signing.key" -out "$tmp/signing.csr" -subj "/O=streambox/CN=streambox update signing" \
        2>/dev/null
    openssl x509 -req -in "$tmp/signing.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/signing.pem" -days 36500 -extfile "$tmp/ca.cnf" \
        -extensions signing 2>/dev/null
    chmod 600 "$dir"/*.key
    rm -rf "$tmp"
    echo "bundle.sh: made the signing keys in $dir"
}

if [ "${1:-}" = --init-signing ]; then
    init_signing "${2:-$signing}"
    exit 0
fi

[ $# -ge 2 ] || fail "usage: bundle.sh ROOT.ext4 OUT.raucb --version V [--signing DIR] [--put SRC:/PATH]... [--rm /PATH]..."
root=$1 out=$2
shift 2
version= puts=() rms=()
while [ $# -gt 0 ]; do
    case "$1" in
    --version) version=$2; shift 2 ;;
    --compatible) compatible=$2; shift 2 ;;
    --signing) signing=$2; shift 2 ;;
    --put) puts+=("$2"); shift 2 ;;
    --rm) rms+=("$2"); shift 2 ;;
    *) fail "unknown argument $1" ;;
    esac
done
[ -n "$version" ] || fail "--version is needed"
[ -f "$root" ] || fail "no such root image: $root"
for t in rauc:rauc mksquashfs:squashfs-tools debugfs:e2fsprogs; do
    command -v "${t%%:*}" >/dev/null || fail "missing ${t%%:*} (package ${t#*:})"
done
init_signing "$signing"

work=$(mktemp -d "${TMPDIR:-/tmp}/bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
cp --sparse=always "$root" "$work/content/rootfs.ext4"
# The root's own release file says the bundle's version.
printf 'VERSION=%s\n' "$version" >"$work/release"
puts+=("$work/release:/usr/lib/streambox/release")
{
    for p in "${rms[@]}"; do echo "rm $p"; done
    for p in "${puts[@]}"; do
        src=${p%%:*} dest=${p#*:}
        [ -f "$src" ] || fail "no such file: $src"
        echo "rm $dest"
        echo "write $src $dest"
        echo "sif $dest uid 0"
        echo "sif $dest gid 0"
        echo "sif $dest mode 0100644"
    done
} >"$work/edits"
debugfs -w -f "$work/edits" "$work/content/rootfs.ext4" >"$work/debugfs.log" 2>&1 ||
    { cat "$work/debugfs.log" >&2; fail "editing the root image failed"; }
for p in "${puts[@]}"; do
    debugfs -R "stat ${p#*:}" "$work/content/rootfs.ext4" 2>/dev/null | grep -q "Type: regular" ||
        { cat "$work/debugfs.log" >&2; fail "could not write ${p#*:} (does its directory exist?)"; }
done
cat >"$work/content/manifest.raucm" <<EOF
[update]
compatible=$compatible
version=$version
description=streambox $version

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
EOF
rm -f "$out"
rauc bundle --cert="$signing/signing.pem" --key="$signing/signing.key" \
    --keyring="$signing/ca.pem" --mksquashfs-args="-comp zstd -Xcompression-level 6" \
    "$work/content" "$out" >"$work/rauc.log" 2>&1 ||
    { cat "$work/rauc.log" >&2; fail "rauc bundle failed"; }
echo "bundle.sh: $out ($(du -h "$out" | cut -f1)), version $version"
