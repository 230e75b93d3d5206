#!/usr/bin/env bash
# Provisioning for hostagent's Xen lab (see Vagrantfile and README.md beside this file).
# Runs as root inside a Debian 12 box; every phase can be run again.
#
#   provision-xen.sh nfs   EXPORT_DIR SUBNET      the NFS server box
#   provision-xen.sh xen                          a Xen host, before its reboot into Xen
#   provision-xen.sh agent NFS_TARGET PEER_IPS    a Xen host, in dom0 after that reboot
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "provision-xen: $*"; }
die() { echo "provision-xen: error: $*" >&2; exit 1; }

apt_install() {
    apt-get update -q
    apt-get install -y -q --no-install-recommends "$@"
}

# --- NFS server --------------------------------------------------------------------------------
phase_nfs() {
    local dir=$1 subnet=$2
    apt_install nfs-kernel-server e2fsprogs
    mkdir -p "$dir"
    # The second disk, if any, holds the SR so that guests' disks do not fill the root fs.
    if [ -b /dev/vdb ] && ! grep -q " $dir " /etc/fstab; then
        blkid /dev/vdb >/dev/null || mkfs.ext4 -q -L nfs-sr /dev/vdb
        echo "LABEL=nfs-sr $dir ext4 defaults 0 2" >> /etc/fstab
        mount "$dir"
    fi
    mkdir -p /etc/exports.d
    echo "$dir $subnet(rw,sync,no_root_squash,no_subtree_check)" > /etc/exports.d/hostagent-sr.exports
    systemctl enable --now nfs-server
    exportfs -ra
    exportfs -v
}

# --- Xen host, phase 1: packages and the boot entry ----------------------------------------------
phase_xen() {
    # xen-system-amd64: hypervisor + toolstack (xl, xenstored); qemu-system-xen: the qdisk
    # backend for file disks and HVM device model; libvirt-daemon-driver-xen: libxl driver.
    apt_install xen-system-amd64 xen-tools qemu-system-xen \
        libvirt-daemon-system libvirt-daemon-driver-xen libvirt-clients \
        bridge-utils ifupdown nfs-common lvm2 make ca-certificates

    # Boot Xen by default. dom0 gets a fixed 1 GiB (no ballooning) and its console on hvc0.
    # smap=0 and noreboot come from booting Xen under QEMU: without smap=0 dom0 crashed at once
    # under TCG (harmless with KVM); noreboot keeps a panic on the serial console for reading
    # (`virsh console`).
    cat > /etc/default/grub.d/hostagent-xen.cfg <<'CFG'
XEN_OVERRIDE_GRUB_DEFAULT=1
GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=1024M,max:1024M console=com1,vga com1=115200,8n1 noreboot smap=0"
GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT="console=hvc0 console=tty0"
CFG
    update-grub

    # dom0's memory is fixed, so neither xl nor libvirt may balloon it.
    sed -i 's/^#\?autoballoon=.*/autoballoon="off"/' /etc/xen/xl.conf
    grep -q '^autoballoon=' /etc/xen/xl.conf || echo 'autoballoon="off"' >> /etc/xen/xl.conf
    if grep -q '^#\?autoballoon' /etc/libvirt/libxl.conf 2>/dev/null; then
        sed -i 's/^#\?autoballoon.*/autoballoon = 0/' /etc/libvirt/libxl.conf
    else
        echo 'autoballoon = 0' >> /etc/libvirt/libxl.conf
    fi
    log "Xen installed; rebooting into it"
}

# libvirt 9.0's xen driver refuses to start ("Cannot find suitable CPU model for given data")
# when the CPU flags Xen reports lack `sep`, as they do under QEMU's TCG: every stock model needs
# it. One more model, qemu64 without sep, fixes that. Real hardware and KVM should not need it;
# it is added only when the driver fails, and a libvirt0 upgrade undoes it.
add_cpu_model_without_sep() {
    local map=/usr/share/libvirt/cpu_map
    [ -e "$map/x86_qemu64-nosep.xml" ] && return 0
    log "libvirt's xen driver fails: adding cpu model qemu64-nosep to $map"
    sed -e "s/name='qemu64'/name='qemu64-nosep'/" -e "/<feature name='sep'\/>/d" \
        "$map/x86_qemu64.xml" > "$map/x86_qemu64-nosep.xml"
    sed -i "s|^\( *\)<include filename='x86_qemu64.xml'/>|&\n\1<include filename='x86_qemu64-nosep.xml'/>|" \
        "$map/index.xml"
}

xen_driver_works() { virsh -c xen:///system capabilities >/dev/null 2>&1; }

# --- Xen host, phase 2: in dom0 -----------------------------------------------------------------
phase_agent() {
    local nfs_target=$1 peers=$2
    if [ "$(cat /sys/hypervisor/type 2>/dev/null)" != xen ] || ! xl info >/dev/null 2>&1; then
        die "not running as a Xen dom0: check that GRUB's default entry is 'Debian GNU/Linux, with Xen hypervisor' and read the serial console (virsh console)"
    fi
    xl info | grep -E '^(xen_version|virt_caps|total_memory|free_memory)'

    systemctl enable --now libvirtd
    if ! xen_driver_works; then
        add_cpu_model_without_sep
        systemctl restart libvirtd
        sleep 2
        xen_driver_works || { journalctl -u libvirtd -n 30 --no-pager; die "libvirt's xen:///system does not answer"; }
    fi
    virsh -c xen:///system version

    # A bridge for guests' VIFs, with no uplink: guests reach dom0 only.
    if ! grep -q '^source /etc/network/interfaces.d/' /etc/network/interfaces; then
        echo 'source /etc/network/interfaces.d/*' >> /etc/network/interfaces
    fi
    cat > /etc/network/interfaces.d/xenbr0 <<'NET'
auto xenbr0
iface xenbr0 inet static
    address 10.80.0.1/24
    bridge_ports none
    bridge_stp off
    bridge_fd 0
NET
    ip link show xenbr0 >/dev/null 2>&1 || ifup xenbr0

    # hostagent from the synced work tree: system packages and .venv, as a developer gets them.
    make -C /vagrant deps venv

    local me="" ip
    for ip in ${peers//,/ }; do
        if ip -o -4 addr show | grep -F " $ip/" >/dev/null; then me=$ip; fi
    done
    [ -n "$me" ] || die "none of $peers is an address of this box"

    mkdir -p /etc/hostagent /var/lib/xcp
    cat > /etc/hostagent/hostagent.conf <<CONF
# Written by vagrant/provision-xen.sh; see systemd/hostagent.conf.example.
[hostagent]
state-dir = /var/lib/hostagent
listen = 0.0.0.0:8080
unix-socket = /var/lib/xcp/xapi
libvirt-uri = xen:///system
auth = local
address = $me
CONF
    if [ -e /vagrant/systemd/pam.d-hostagent ]; then
        install -m 0644 /vagrant/systemd/pam.d-hostagent /etc/pam.d/hostagent
    fi
    install -m 0644 /vagrant/systemd/hostagent.service /etc/systemd/system/hostagent.service
    mkdir -p /etc/systemd/system/hostagent.service.d
    cat > /etc/systemd/system/hostagent.service.d/lab.conf <<'UNIT'
# The lab runs hostagent from the synced tree's venv instead of /usr/bin.
[Service]
ExecStart=
ExecStart=/vagrant/.venv/bin/hostagent serve --config /etc/hostagent/hostagent.conf
UNIT
    ln -sf /vagrant/.venv/bin/xe /usr/local/bin/xe

    # What the functional tests marked `xen` read (login shells get it from profile.d).
    local kver lvm_dev=""
    kver=$(uname -r)
    if [ -b /dev/vdb ]; then lvm_dev=/dev/vdb; fi
    cat > /etc/hostagent/lab.env <<ENV
HOSTAGENT_TEST_LIBVIRT_URI=xen:///system
HOSTAGENT_TEST_NFS=$nfs_target
HOSTAGENT_TEST_PEERS=$peers
HOSTAGENT_TEST_SELF=$me
HOSTAGENT_TEST_BRIDGE=xenbr0
HOSTAGENT_TEST_LVM_DEVICE=$lvm_dev
HOSTAGENT_TEST_GUEST_KERNEL=/boot/vmlinuz-$kver
HOSTAGENT_TEST_GUEST_INITRD=/boot/initrd.img-$kver
ENV
    printf 'set -a\n. /etc/hostagent/lab.env\nset +a\n' > /etc/profile.d/hostagent-lab.sh

    showmount -e "${nfs_target%%:*}" || log "warning: NFS server ${nfs_target%%:*} does not answer yet"

    systemctl daemon-reload
    systemctl enable hostagent
    systemctl restart hostagent
    sleep 3
    if ! systemctl is-active --quiet hostagent; then
        journalctl -u hostagent -n 40 --no-pager
        die "hostagent did not start"
    fi
    log "hostagent runs on $me:8080; root's password is in /var/lib/hostagent/root-password"
}

case "${1:-}" in
    nfs)   shift; [ $# -eq 2 ] || die "usage: $0 nfs EXPORT_DIR SUBNET"; phase_nfs "$@" ;;
    xen)   shift; phase_xen ;;
    agent) shift; [ $# -eq 2 ] || die "usage: $0 agent NFS_TARGET PEER_IPS"; phase_agent "$@" ;;
    *)     die "usage: $0 nfs|xen|agent ..." ;;
esac
