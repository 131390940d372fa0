#!/usr/bin/env bash
# The appliance image's boot test: builds the Debian image (test flavour, with the QEMU
# guest agent as the way in), boots it under QEMU (TCG, OVMF UEFI, no KVM, user-mode
# networking with host forwards), and checks it from the host and from inside
# (image/boot_test.py), updates included (RAUC bundles made from the image's root with
# throwaway signing keys). Installs the host tools it needs when they are missing, and
# cargo-deb under ~/.cache/streambox/tools. The image build runs as root (through sudo
# when the caller is not root); the package downloads are cached under ~/.cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

need=()
for t in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 mkfs.vfat:dosfstools \
    mcopy:mtools sfdisk:fdisk qemu-img:qemu-utils zstd:zstd python3:python3 ffmpeg:ffmpeg \
    openssl:openssl rauc:rauc mksquashfs:squashfs-tools debugfs:e2fsprogs; do
    command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[ -f /usr/share/OVMF/OVMF_CODE.fd ] || need+=(ovmf)
# What building the service's .deb needs (a C compiler, ALSA's headers, …).
packages=()
. "$repo/tools/build-deps.sh"
need+=("${packages[@]}")
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
if [ ${#need[@]} -gt 0 ]; then
    echo "image/test.sh: installing ${need[*]}"
    "${sudo[@]}" apt-get update -qq
    # qemu-system-x86 needs qemu-utils of its own version: a newer one (from backports,
    # as some machines come with) is replaced by it, which apt does only when told.
    case " ${need[*]} " in *" qemu-system-x86 "*)
        v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
        need+=("qemu-utils=$v") ;;
    esac
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --allow-downgrades \
        --no-install-recommends "${need[@]}" >/dev/null
fi

# The .deb, built as the caller (the target directory stays theirs).
tools="$HOME/.cache/streambox/tools"
cargo_deb=$(command -v cargo-deb || echo "$tools/bin/cargo-deb")
if [ ! -x "$cargo_deb" ]; then
    cargo install cargo-deb --locked --version 3.8.0 --root "$tools"
    cargo_deb="$tools/bin/cargo-deb"
fi
out=${STREAMBOX_IMAGE_OUT:-$HOME/.cache/streambox/image-test}
rm -rf "$out/deb"
(cd "$repo" && "$cargo_deb" -p streambox --strip --output "$out/deb/")

deb=$(ls "$out"/deb/streambox_*.deb)
# Update signing keys made for this test and thrown away after it (a real build keeps
# its own, outside the repository: image/bundle.sh --init-signing).
signing="$out/signing"
rm -rf "$signing"
"$here/bundle.sh" --init-signing "$signing" >/dev/null
# The shipped flavour's tree: the same checks (no guest agent, no sshd, no compiler).
"${sudo[@]}" "$here/build.sh" --distribution debian --flavour shipped --out "$out/shipped" \
    --tree-only --deb "$deb" --signing "$signing"
"${sudo[@]}" "$here/build.sh" --distribution debian --flavour test --out "$out" --keep-raw \
    --deb "$deb" --signing "$signing"
python3 "$here/boot_test.py" "$out"
