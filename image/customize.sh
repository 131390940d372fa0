#!/usr/bin/env bash
# mmdebstrap's customize hook for image/build.sh: turns the installed tree (its first
# argument) into the appliance's root: the files in image/rootfs/, the network and
# firewall files, which units run, no login anywhere, a trimmed kernel module tree and
# the initramfs that mounts the state partition.
set -euo pipefail
tree=$1 repo=$2

cp -a --no-preserve=ownership "$repo/image/rootfs/." "$tree/"
rm -f "$tree/mnt/state/.keep" "$tree/tmp/streambox.deb"
install -m 600 "$repo/netplan/10-streambox-wired.yaml" "$tree/etc/netplan/10-streambox-wired.yaml"
install -m 755 "$repo/image/nftables.conf" "$tree/etc/nftables.conf"
# An empty machine ID: the initramfs binds the one on the state partition over it.
: >"$tree/etc/machine-id"
rm -f "$tree/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$tree/var/lib/dbus/machine-id"
# The host name and the NTP servers live on the state partition (the network helper
# changes them there).
ln -sfn /mnt/state/host/hostname "$tree/etc/hostname"
mkdir -p "$tree/etc/systemd/timesyncd.conf.d"
ln -sfn /mnt/state/host/timesyncd.conf "$tree/etc/systemd/timesyncd.conf.d/streambox.conf"

in_tree() { chroot "$tree" "$@"; }
in_tree systemctl enable nftables.service systemd-networkd.service systemd-resolved.service \
    systemd-timesyncd.service avahi-daemon.service streambox.service streambox-netplan.service \
    streambox-console@tty1.service streambox-console@ttyS0.service \
    streambox-healthy.service >/dev/null 2>&1
# The ESP's mount point (fstab), and the slot's release and signing keyring (build.sh).
mkdir -p "$tree/efi"
# No login prompts anywhere: the console shows the banner instead.
in_tree systemctl mask getty.target console-getty.service systemd-firstboot.service >/dev/null 2>&1
# The test flavour's way in, qemu-ga, needs no enabling: udev starts it when its virtio
# port appears, and the shipped flavour does not have the package.
ln -sf /run/systemd/resolve/stub-resolv.conf "$tree/etc/resolv.conf"

# Kernel modules an appliance never loads (wireless, InfiniBand, ISDN, staging, DVB
# tuners, industrial I/O); capture, sound, GPU and network drivers stay.
for kdir in "$tree"/usr/lib/modules/*/; do
    kver=$(basename "$kdir")
    for d in net/wireless infiniband isdn staging media/dvb-frontends media/tuners iio \
        net/ethernet/mellanox net/ethernet/chelsio net/ethernet/qlogic bluetooth; do
        rm -rf "$kdir/kernel/drivers/$d"
    done
    rm -rf "$kdir/kernel/net/wireless" "$kdir/kernel/net/mac80211" "$kdir/kernel/net/bluetooth"
    in_tree depmod -a "$kver"
done
in_tree update-initramfs -u -k all >/dev/null

# Nothing the running box does not need: package lists and caches, logs of the build.
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin "$tree"/var/cache/debconf/*-old \
    "$tree"/var/log/*.log "$tree"/var/log/apt/* "$tree"/usr/share/doc/* "$tree"/usr/share/man/*
find "$tree/usr/lib/python3" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
