"""eliloader's PV installs on real KVM guests (`--libvirt-uri qemu:///system`), driven through the
agent with the real XenAPI package.

For each of the Debian, CentOS and SLES templates: a repository of that distribution's layout,
served by a real HTTP server, holds an "installer" (the tests/kvm kit's kernel and an initramfs
that reports its /proc/cmdline on the serial console and writes an "installed system", an ext2
file system with a kernel and, per distribution, a GRUB menu, onto the VM's disk). The VM is
cloned from the template, given install-repository, provisioned and started: it boots the
fetched kernel with the installer's arguments. Its second start boots the installed kernel the
way the rounds say: pygrub (which the agent plays on KVM) reading the GRUB menu for Debian and
CentOS, and for SLES the kernel its second round found and named in PV_bootloader_args. Then the
same with the repository on an ISO in the VM's CD drive.
"""

import os
import time

import libvirt
import pytest
import XenAPI

from tests.kvm.domain import qemu_workdir  # noqa: F401 - fixture
from tests.kvm.guestkit import guest_kit  # noqa: F401 - fixture
from tests.kvm.libvirtd import libvirtd  # noqa: F401 - fixture
from tests.kvm.serial import Console

from .agent import AgentProcess
from .guest_install_media import (NETWORK_LAYOUT, RepositoryServer, installed_image, iso_image, overlay_initrd,
                                  repository_tree)
from .storage_util import MiB

pytestmark = pytest.mark.kvm

TEMPLATES = {"debianlike": "Debian Bookworm 12", "rhlike": "CentOS 5.0",
             "sleslike": "SUSE Linux Enterprise Server 10 SP1"}
INSTALLER_ARGS = {
    "debianlike": "mirror/protocol=http mirror/country=manual mirror/http/hostname={host} "
                  "mirror/http/directory=/debianlike mirror/http/proxy= mirror/suite=bookworm",
    "rhlike": "method={url}/rhlike vnc vncpassword=s3cret",
    "sleslike": "install={url}/sleslike vnc=1 vncpassword=s3cret",
}
INSTALLED_ARGS = {"debianlike": "root=/dev/vda ro installed=debian", "rhlike": "ro root=/dev/vda installed=centos",
                  "sleslike": ""}


@pytest.fixture
def lab(libvirtd, guest_kit, qemu_workdir):  # noqa: F811 - pytest fixtures by name
    state = qemu_workdir / "state"
    state.mkdir(mode=0o755)
    agent = AgentProcess(str(state), extra_args=("--libvirt-uri", libvirtd)).start()
    session = XenAPI.Session(agent.url)
    session.xenapi.login_with_password("root", agent.password, "1.0", "eliloader-kvm")
    x = session.xenapi
    yield {"agent": agent, "x": x, "workdir": qemu_workdir, "kit": guest_kit,
           "conn": libvirt.open(libvirtd)}
    for vm in x.VM.get_all():
        rec = x.VM.get_record(vm)
        if not rec["is_a_template"] and not rec["is_control_domain"] and rec["power_state"] == "Running":
            x.VM.hard_shutdown(vm)
    agent.cleanup()


def install_vm(lab, distro, name, **keys):
    """A VM cloned from the distribution's template and provisioned, as seed §3.1.3, with
    the kit's console on the command line (PV_args) and a small disk and memory."""
    x = lab["x"]
    [template] = [v for v in x.VM.get_by_name_label(TEMPLATES[distro]) if x.VM.get_is_default_template(v)]
    vm = x.VM.clone(template, name)
    other = x.VM.get_other_config(vm)
    assert other["install-distro"] == distro and x.VM.get_PV_bootloader(vm) == "eliloader"
    other["disks"] = other["disks"].replace('size="8589934592"', f'size="{64 * MiB}"')
    other["hostagent-serial-socket"] = str(lab["workdir"] / f"{name}.sock")
    other.update(keys)
    x.VM.set_other_config(vm, other)
    x.VM.set_memory_limits(vm, str(256 * MiB), str(256 * MiB), str(256 * MiB), str(256 * MiB))
    x.VM.set_PV_args(vm, lab["kit"].cmdline)
    x.VM.provision(vm)
    return vm


def boot_and_read(lab, vm, wait_installed=False):
    """Start the VM and return (role, cmdline) its guest reports on the serial console."""
    x = lab["x"]
    x.VM.start(vm, False, False)
    dom = lab["conn"].lookupByUUIDString(x.VM.get_uuid(vm))
    with Console.of_domain(dom, timeout=30) as console:
        role = console.wait_for("ROLE ", timeout=240).split(None, 1)[1].strip()
        cmdline = console.wait_for("CMDLINE ", timeout=30).split(None, 1)[1].strip()
        if wait_installed:
            assert console.wait_line(lambda line: line.startswith(("INSTALLED", "INSTALL-FAILED")), 120,
                                     "the install") == "INSTALLED"
    if wait_installed:  # the installer reboots when done: that reboot halts the VM
        deadline = time.monotonic() + 90
        while x.VM.get_power_state(vm) != "Halted":
            assert time.monotonic() < deadline, "the installer's reboot did not halt the VM"
            time.sleep(0.5)
    else:
        x.VM.hard_shutdown(vm)
    return role, cmdline


def cache_of(lab, vm):
    return os.path.join(lab["agent"].state_dir, "boot", lab["x"].VM.get_uuid(vm))


@pytest.mark.parametrize("distro", ["debianlike", "rhlike", "sleslike"])
def test_install_from_an_http_repository_then_boot_the_installed_system(lab, distro):
    x, kit, work = lab["x"], lab["kit"], lab["workdir"]
    image = installed_image(kit, distro, work)
    repository_tree(kit, distro, work / "repo" / distro, image)
    with RepositoryServer(work / "repo") as server:
        keys = {"install-repository": f"{server.url}/{distro}", "install-vnc": "true",
                "install-vncpasswd": "s3cret"}
        vm = install_vm(lab, distro, f"install-{distro}", **keys)

        # the install round: the fetched installer with its arguments, then the round advances
        role, cmdline = boot_and_read(lab, vm, wait_installed=True)
        assert role == f"installer-{distro}"
        expected = INSTALLER_ARGS[distro].format(url=server.url, host=server.url.split("//")[1])
        assert cmdline == f"{kit.cmdline} {expected}"
        assert x.VM.get_other_config(vm)["install-round"] == "2"

    if distro == "sleslike":  # two rounds: the installer's files wait for the second
        assert x.VM.get_PV_bootloader(vm) == "eliloader"
        assert sorted(os.listdir(cache_of(lab, vm))) == ["initrd", "vmlinuz"]
    else:  # pygrub from now on; the downloads are gone
        assert x.VM.get_PV_bootloader(vm) == "pygrub"
        assert not os.path.exists(cache_of(lab, vm))

    # the next start (the repository's server is gone): the installed system
    role, cmdline = boot_and_read(lab, vm)
    assert role == f"installed-{distro}"
    assert cmdline == " ".join(a for a in (INSTALLED_ARGS[distro], kit.cmdline) if a)
    assert x.VM.get_PV_bootloader(vm) == "pygrub"
    if distro == "sleslike":
        assert x.VM.get_PV_bootloader_args(vm) == "--kernel=/boot/vmlinuz-xen --ramdisk=/boot/initrd-xen"
        assert x.VM.get_other_config(vm)["install-round"] == "3"
    assert not os.path.exists(cache_of(lab, vm))


def test_install_from_the_iso_in_the_cd_drive(lab):
    x, kit, work = lab["x"], lab["kit"], lab["workdir"]
    image = installed_image(kit, "rhlike", work)
    isos = work / "isos"
    isos.mkdir()
    iso_image({"images/xen/vmlinuz": kit.kernel.read_bytes(),
               "images/xen/initrd.img": overlay_initrd(kit, "installer-cd", image)}, isos / "centos5.iso")
    sr = x.SR.create(x.host.get_all()[0], {"location": str(isos)}, "0", "ISOs", "", "iso", "", False, {})
    [iso] = x.SR.get_VDIs(sr)
    vm = install_vm(lab, "rhlike", "install-cd", **{"install-repository": "cdrom"})
    x.VBD.create({"VM": vm, "VDI": iso, "userdevice": "3", "bootable": False, "mode": "RO", "type": "CD",
                  "empty": False, "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    role, cmdline = boot_and_read(lab, vm, wait_installed=True)
    assert (role, cmdline) == ("installer-cd", f"{kit.cmdline} method=cdrom")
    assert x.VM.get_PV_bootloader(vm) == "pygrub" and not os.path.exists(cache_of(lab, vm))
    role, cmdline = boot_and_read(lab, vm)
    assert role == "installed-rhlike" and cmdline == f"{INSTALLED_ARGS['rhlike']} {kit.cmdline}"


def test_layouts_are_the_rule_tables():
    """The trees served above follow the rule table (a guard against the two drifting apart)."""
    from hostagent.actions import install_rules
    rules = install_rules.load()
    values = {"suite": "bookworm", "arch": None}
    for distro, pair in NETWORK_LAYOUT.items():
        values["arch"] = rules[distro]["arch"]["x86_64"]
        assert pair in [(k.format(**values), i.format(**values)) for k, i in rules[distro]["network"]]
