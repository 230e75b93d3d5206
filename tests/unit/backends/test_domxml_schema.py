"""Every rendered domain validates against libvirt's own RNG schema (virt-xml-validate).

virt-xml-validate comes with Debian's libvirt-clients and runs xmllint (libxml2-utils)
on the schemas libvirt0 installs under /usr/share/libvirt/schemas. When missing, the
fixture installs both as root; it skips, saying why, when it cannot.
"""

import dataclasses
import os
import shutil
import subprocess

import pytest

from hostagent.backends import domain as D
from hostagent.backends import domxml

from .test_domxml_golden import CASES, QEMU_HVM, XEN_HVM, XEN_PV, XEN_PVH, XEN_PYGRUB

PACKAGES = ["libvirt-clients", "libxml2-utils"]


def _have_validator() -> bool:
    return bool(shutil.which("virt-xml-validate") and shutil.which("xmllint"))


@pytest.fixture(scope="module")
def validator():
    if not _have_validator():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip(f"virt-xml-validate missing; install {' '.join(PACKAGES)} as root")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        for argv in (install, ["apt-get", "update", "-q"], install):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
            if argv is install and done.returncode == 0:
                break
        if not _have_validator():
            pytest.skip(f"could not install {' '.join(PACKAGES)}: {done.stderr.strip()[-500:]}")

    def validate(xml: str, tmp_path) -> subprocess.CompletedProcess:
        path = tmp_path / "domain.xml"
        path.write_text(xml)
        return subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True,
                              timeout=60)

    return validate


def _variants():
    """The golden cases plus what they leave out: BIOS with a boot order, a named UEFI
    image, nested HVM, an HVM serial socket, KVM on UEFI, a PV kernel on KVM."""
    yield from ((name, driver, dom) for name, (driver, dom) in sorted(CASES.items()))
    bios = dataclasses.replace(XEN_HVM, boot=D.Boot(kind=D.HVM, order="cdn"), nested_hvm=True,
                               serial_socket="/run/hostagent/serial.sock", vcpu_weight=128)
    yield "xen-hvm-bios-nested", "Xen", bios
    named = dataclasses.replace(XEN_HVM, boot=D.Boot(kind=D.HVM, firmware="uefi", loader="/usr/lib/xen/boot/ovmf.bin"))
    yield "xen-hvm-uefi-loader", "Xen", named
    yield "xen-pvh-nested", "Xen", dataclasses.replace(XEN_PVH, nested_hvm=True, serial_console=False)
    kvm_disks = tuple(dataclasses.replace(d, target=t) for d, t in zip(XEN_HVM.disks, ("vda", "sdc", "sdd")))
    yield "qemu-hvm-uefi", "QEMU", dataclasses.replace(XEN_HVM, disks=kvm_disks, on_crash=D.DESTROY,
                                                      nested_hvm=True)
    yield "qemu-hvm-uefi-loader", "QEMU", dataclasses.replace(
        QEMU_HVM, boot=D.Boot(kind=D.HVM, firmware="uefi", loader="/usr/share/OVMF/OVMF_CODE_4M.fd"),
        viridian=True, vnc=False, serial_socket="")
    yield "qemu-pv-kernel", "QEMU", dataclasses.replace(QEMU_HVM, boot=dataclasses.replace(XEN_PV.boot))
    yield "test-pv-pygrub", "TEST", XEN_PYGRUB


VARIANTS = list(_variants())


@pytest.mark.parametrize("name,driver,dom", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_rendered_domain_validates(validator, tmp_path, name, driver, dom):
    done = validator(domxml.render(driver, dom), tmp_path)
    assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"


def test_the_validator_rejects_what_libvirt_would(validator, tmp_path):
    """So a pass above means something: an element libvirt does not know fails."""
    bad = domxml.render("Xen", XEN_PV).replace("  <devices>", "  <no_such_element />\n  <devices>")
    assert "<no_such_element />" in bad
    done = validator(bad, tmp_path)
    assert done.returncode != 0, done.stdout
