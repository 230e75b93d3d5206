"""The built-in templates, made at start-up when missing.

The seed guide's Linux templates (Debian Etch 4.0, Red Hat Enterprise Linux
4.1 to 5.0, SUSE Linux Enterprise Server 10 SP1, CentOS 4.5 and 5.0) and
three of today (Debian 12, Ubuntu 24.04, "Other install media"). Each is a
VM with is_a_template and is_default_template set (so VM.destroy refuses
with VM_CANNOT_DELETE_DEFAULT_TEMPLATE), memory and VCPU defaults, PV or HVM
boot settings, the `other_config:disks` document VM.provision reads, and the
install keys eliloader reads (`install-methods`, `install-distro`,
`install-repository`, `install-round`, `debian-release`; actions/eliloader.py).
"""

import logging
from dataclasses import dataclass

from ..datamodel.types import NULL_REF
from . import vm as vm_actions

log = logging.getLogger("hostagent.templates")

MiB, GiB = 1 << 20, 1 << 30


@dataclass(frozen=True)
class Template:
    name: str
    distro: str  # install-distro: how the installer of that family is driven
    methods: str  # install-methods: where it may install from
    memory: int
    disk: int
    hvm: bool = False
    vcpus: int = 1
    description: str = ""
    bootloader: str = "eliloader"  # PV: the installer's two-round boot, then pygrub
    release: str = ""  # debianlike: the suite eliloader's netboot paths name (other_config:debian-release)


BUILT_IN = (
    Template("Debian Etch 4.0", "debianlike", "", 256 * MiB, 4 * GiB, bootloader="pygrub", release="etch",
             description="Debian Etch 4.0: a ready root file system would be installed by provision "
                         "on XenServer; here provision makes blank disks"),
    Template("Red Hat Enterprise Linux 4.1", "rhlike", "cdrom,nfs,http,ftp", 256 * MiB, 8 * GiB),
    Template("Red Hat Enterprise Linux 4.4", "rhlike", "cdrom,nfs,http,ftp", 256 * MiB, 8 * GiB),
    Template("Red Hat Enterprise Linux 4.5", "rhlike", "cdrom,nfs,http,ftp", 256 * MiB, 8 * GiB),
    Template("Red Hat Enterprise Linux 5.0", "rhlike", "cdrom,nfs,http,ftp", 512 * MiB, 8 * GiB),
    Template("SUSE Linux Enterprise Server 10 SP1", "sleslike", "cdrom,nfs,http,ftp", 512 * MiB, 8 * GiB),
    Template("CentOS 4.5", "rhlike", "cdrom,nfs,http,ftp", 256 * MiB, 8 * GiB),
    Template("CentOS 5.0", "rhlike", "cdrom,nfs,http,ftp", 512 * MiB, 8 * GiB),
    Template("Debian Bookworm 12", "debianlike", "cdrom,http,ftp", 1 * GiB, 10 * GiB, vcpus=1,
             release="bookworm"),
    Template("Ubuntu Noble Numbat 24.04", "debianlike", "cdrom,http,ftp", 2 * GiB, 10 * GiB, vcpus=2,
             release="noble"),
    Template("Other install media", "", "cdrom", 2 * GiB, 32 * GiB, hvm=True, vcpus=2,
             description="An HVM guest installed from a CD or DVD image"),
)


def record(t: Template) -> dict:
    """The VM record of a built-in template."""
    disks = (f'<provision><disk device="0" size="{t.disk}" sr="" bootable="true" type="system"/>'
             '</provision>')
    other = {"default_template": "true", "disks": disks, "install-methods": t.methods, "install-round": "1",
             "install-repository": "", "os-name": t.name}
    if t.distro:
        other["install-distro"] = t.distro
    if t.release:
        other["debian-release"] = t.release
    if t.hvm:
        boot = {"HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "dc", "firmware": "bios"},
                "PV_bootloader": "", "domain_type": "hvm",
                "platform": {"acpi": "1", "apic": "true", "pae": "true", "viridian": "false", "nx": "true"}}
    else:
        boot = {"HVM_boot_policy": "", "HVM_boot_params": {}, "PV_bootloader": t.bootloader, "domain_type": "pv",
                "platform": {"nx": "true"}}
    return {
        "name_label": t.name, "name_description": t.description or f"Template for {t.name}",
        "reference_label": reference_label(t),
        "user_version": 1, "is_a_template": True, "affinity": NULL_REF,
        "memory_static_max": t.memory, "memory_dynamic_max": t.memory, "memory_dynamic_min": t.memory,
        "memory_static_min": min(t.memory, 128 * MiB), "memory_target": t.memory,
        "VCPUs_params": {}, "VCPUs_max": t.vcpus, "VCPUs_at_startup": t.vcpus,
        "actions_after_shutdown": "destroy", "actions_after_reboot": "restart", "actions_after_crash": "restart",
        "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "PCI_bus": "", "other_config": other, "xenstore_data": {},
        "recommendations": ('<restrictions><restriction field="memory-static-max" max="137438953472"/>'
                            f'<restriction field="vcpus-max" max="32"/></restrictions>'),
        **boot,
    }


def reference_label(t: Template) -> str:
    """A built-in template's lasting name (as xapi's reference_label): users may rename it."""
    return "-".join(t.name.lower().replace(".", "-").split())


def ensure(ctx) -> int:
    """Make every built-in template that is missing (by reference_label); returns how many
    were made."""
    store = ctx.store
    have = {rec["reference_label"] for rec in store.all("VM").values() if rec["is_default_template"]}
    made = 0
    for t in BUILT_IN:
        if reference_label(t) in have:
            continue
        vm = vm_actions.create(ctx, record(t))
        with store.transaction():
            store.set("VM", vm, "is_default_template", True)
        made += 1
    if made:
        log.info("made %d built-in templates", made)
    return made
