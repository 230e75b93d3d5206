"""Where a domain's consoles are (live domain XML) and who runs device models."""

import os

import pytest

from hostagent.backends.consoles_privilege import device_model_user
from hostagent.backends.hypervisor.console_targets import DomainConsoles, from_xml

KVM_LIVE = """<domain type='qemu' id='3'><name>g</name><devices>
  <serial type='pty'><source path='/dev/pts/7'/><target type='isa-serial' port='0'/></serial>
  <console type='pty' tty='/dev/pts/7'><source path='/dev/pts/7'/><target type='serial' port='0'/></console>
  <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>
    <listen type='address' address='127.0.0.1'/></graphics>
</devices></domain>"""

XEN_PV = """<domain type='xen' id='4'><devices>
  <console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/><target type='xen' port='0'/></console>
  <serial type='pty'><source path='/dev/pts/9'/><target port='0'/></serial>
  <graphics type='vnc' port='-1' autoport='yes'/>
</devices></domain>"""

SOCKET_SERIAL = """<domain><devices>
  <serial type='unix'><source mode='bind' path='/tmp/s'/><target port='0'/></serial>
  <console type='unix'><source mode='bind' path='/tmp/s'/><target type='serial' port='0'/></console>
</devices></domain>"""


def test_kvm_serial_pty_and_vnc_port():
    assert from_xml(KVM_LIVE) == DomainConsoles("/dev/pts/7", 5901)


def test_xen_pv_console_wins_over_a_serial_port_and_an_unassigned_port_is_none():
    assert from_xml(XEN_PV) == DomainConsoles("/dev/pts/3", 0)


def test_a_socket_bound_serial_port_is_no_text_console():
    assert from_xml(SOCKET_SERIAL) == DomainConsoles("", 0)
    assert from_xml("<domain><name>x</name></domain>") == DomainConsoles()


@pytest.mark.parametrize("text, user, privileged", [
    ('#user = "libvirt-qemu"\n', "libvirt-qemu", False),  # commented: libvirt's default
    ('user = "nobody"\n', "nobody", False),
    ('user = "nobody"\nuser = "+0"\n', "0", True),  # the last one wins; +0 is uid 0
    ('user = "root"\n', "root", True),
])
def test_qemu_conf_user(tmp_path, text, user, privileged):
    conf = tmp_path / "qemu.conf"
    conf.write_text(text)
    empty_proc = tmp_path / "proc"
    empty_proc.mkdir()
    found = device_model_user("QEMU", str(conf), str(empty_proc))
    assert (found.user, found.privileged) == (user, privileged)
    assert found.source


def test_running_qemu_names_the_user_when_qemu_conf_is_silent(tmp_path):
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cmdline").write_bytes(b"/usr/bin/qemu-system-x86_64\0-name\0guest=g,debug-threads=on\0")
    (proc / "17").mkdir()
    (proc / "17" / "cmdline").write_bytes(b"bash\0")
    (proc / "99").mkdir()  # a qemu libvirt did not start (a lab's): not libvirt's user
    (proc / "99" / "cmdline").write_bytes(b"qemu-system-x86_64\0-m\0002048\0")
    found = device_model_user("QEMU", str(tmp_path / "missing.conf"), str(proc))
    assert found.source == "the user of a running qemu"
    assert found.privileged == (os.stat(proc / "4242").st_uid == 0)


def test_drivers_without_device_models_and_xen_without_deprivilege_users():
    assert device_model_user("TEST").user == ""
    xen = device_model_user("Xen")
    assert xen.user in ("xen-qemuuser-range-base", "xen-qemuuser-shared", "root")
    assert xen.privileged == (xen.user == "root")
