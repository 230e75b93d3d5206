#!/bin/sh
# /init of the lab's PV test guest (busybox sh as PID 1, dom0's own kernel; lab/guest.py).
# It talks through xenstore, as a guest agent does, writing into its domain's home
# (/local/domain/<domid>/) with the xenbus protocol on /dev/xen/xenbus:
#   data/os_name, data/os_distro, data/os_uname, attr/vif/0/ipv4/0   a few seconds after boot
#   data/blocks      the block devices it sees (xvda xvdb ...)
#   data/head/<dev>  the first 16 bytes of each xvd* disk, in hex (that the disk is readable)
# each rewritten when the disks change and every 5 s (a resumed domain starts with an empty home)
# Xen's shutdown request reaches the kernel, which runs /sbin/poweroff (below).
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
CONSOLE=/dev/hvc0
insmod /lib/modules/xen-blkfront.ko 2>/dev/null || echo "WARN insmod xen-blkfront failed" >"$CONSOLE"

# One XS_WRITE (type 11) request: a 16-byte header (type, request id, transaction id, length;
# little-endian 32-bit) and "path\0value". The kernel queues the answer, dropped at close.
xs_write() {
    n=$((${#1} + 1 + ${#2}))
    len=$(printf '\\%03o\\%03o' $((n % 256)) $((n / 256)))
    printf "\\013\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000${len}\\000\\000%s\\000%s" \
        "$1" "$2" >/dev/xen/xenbus
}

blocks() {
    set --
    for dev in /sys/block/*; do
        name=${dev##*/}
        case $name in loop*|ram*|zram*|\*) ;; *) set -- "$@" "$name" ;; esac
    done
    echo "$*"
}

echo "LAB-GUEST $(uname -r)" >"$CONSOLE"
ip link set lo up
ip addr add 192.0.2.10/32 dev lo    # TEST-NET-1: the address this "guest agent" reports
sleep 3
# Everything is written again every few seconds, as a guest agent's loop does: after a resume
# the domain has a new id and a new, empty xenstore home.
publish() {
    xs_write data/os_name "lab busybox guest"
    xs_write data/os_distro busybox
    xs_write data/os_uname "$(uname -r)"
    xs_write attr/vif/0/ipv4/0 192.0.2.10
    xs_write data/blocks "$1"
    for dev in $1; do
        case $dev in xvd*) xs_write "data/head/$dev" "$(od -An -tx1 -N16 "/dev/$dev" | tr -d ' \n')" ;; esac
    done
}
last=unset
n=0
while :; do
    now=$(blocks)
    if [ "$now" != "$last" ] || [ $((n % 5)) = 0 ]; then
        publish "$now"
        [ "$now" != "$last" ] && echo "BLOCK $now" >"$CONSOLE"
        last=$now
    fi
    n=$((n + 1))
    sleep 1
done
