"""The KVM test kit end to end under libvirtd: the kit's guest boots, sees a disk hot-plugged,
reads what the host wrote, writes what the host reads, survives save and restore, and powers off
on the ACPI power button. Later tests boot the same guest through the agent.
"""

import contextlib
import hashlib
import os
import uuid

import libvirt
import pytest

# The kit's fixtures are imported so that pytest finds them here: guest_kit, libvirtd,
# qemu_workdir and phases are requested by name below.
from tests.kvm.domain import (bare_domain_xml, console_socket, disk_xml, domain_type,  # noqa: F401
                              qemu_workdir, raw_disk)
from tests.kvm.guestkit import guest_kit  # noqa: F401
from tests.kvm.libvirtd import libvirtd  # noqa: F401
from tests.kvm.serial import Console
from tests.kvm.timing import phases  # noqa: F401
from tests.support import wait_for

pytestmark = [pytest.mark.kvm, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(600)]

BOOT_TIMEOUT = 120  # TCG on a busy 2-core machine; about 8 s when idle
MIB = 1 << 20


def test_guest_boots_sees_a_hotplugged_disk_survives_save_and_powers_off_on_acpi(
        libvirtd, guest_kit, qemu_workdir, phases):
    conn = libvirt.open(libvirtd)
    name = f"hostagent-kit-{uuid.uuid4().hex[:8]}"
    first = os.urandom(256 << 10)
    second = os.urandom(1 * MIB)
    vda = raw_disk(qemu_workdir / "vda.raw", 16, first)
    vdb = raw_disk(qemu_workdir / "vdb.raw", 16, second)
    saved = qemu_workdir / "saved.img"
    kind = domain_type()
    phases.log(f"kvm: domain type {kind}, kernel {guest_kit.kernel_version}")
    dom = None
    try:
        with phases("boot to READY"):
            dom = conn.defineXML(bare_domain_xml(name, guest_kit, qemu_workdir, vda, kind=kind))
            dom.create()
            console = Console.connect_unix(console_socket(qemu_workdir))
            assert console.wait_ready(BOOT_TIMEOUT) == guest_kit.kernel_version
            console.wait_blocks(["vda"])

        with phases("hot-plug vdb"):
            dom.attachDeviceFlags(disk_xml(vdb, "vdb"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
            console.wait_blocks(["vda", "vdb"], timeout=60)

        with phases("read and write through the guest"):
            assert console.sha256("vda", len(first)) == hashlib.sha256(first).hexdigest()
            assert console.sha256("vdb", len(second)) == hashlib.sha256(second).hexdigest()
            console.write("vdb", 3 * MIB + 7, 10000, "kvm-kit")
            console.sync()
            with open(vdb, "rb") as image:
                image.seek(3 * MIB + 7)
                assert image.read(10000) == (b"kvm-kit" * 1429)[:10000]

        with phases("save and restore"):
            console.close()
            dom.save(str(saved))
            assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
            conn.restore(str(saved))
            assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            console = Console.connect_unix(console_socket(qemu_workdir))
            assert console.ping() == guest_kit.kernel_version
            assert sorted(console.command("blocks").split()) == ["vda", "vdb"]
            assert console.sha256("vdb", len(second)) == hashlib.sha256(second).hexdigest()

        with phases("ACPI shutdown"):
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            console.wait_for("POWEROFF", timeout=60)
            wait_for(lambda: dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, 60, "shut off")
            assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
        console.close()
    finally:
        if dom is not None:
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            dom.undefine()
        conn.close()
