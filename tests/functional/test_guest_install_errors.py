"""eliloader's failures at VM.start, on the embedded default (libvirt's test driver): a bad
repository URL, a missing kernel, a truncated download, an unreadable ISO, no installed kernel
on the disk. Each is BOOTLOADER_FAILED [vm, message]; the VM stays Halted, its install keys
unchanged, and nothing stays in its download directory.
"""

import os
import time

import pytest
import XenAPI

from .agent import AgentProcess
from .guest_install_media import RepositoryServer, iso_image
from .storage_util import MiB, failure

NULL = "OpaqueRef:NULL"


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    a = AgentProcess(str(tmp_path_factory.mktemp("eliloader-errors") / "state"))
    a.start()
    yield a
    a.cleanup()


@pytest.fixture(scope="module")
def x(agent):
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", agent.password, "1.0", "eliloader-errors")
    yield s.xenapi
    s.xenapi.session.logout()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    for relative in ("centos/images/xen/vmlinuz", "centos/images/xen/initrd.img",
                     "nokernel/images/README", "sles/boot/x86_64/vmlinuz-xen",
                     "sles-full/boot/x86_64/vmlinuz-xen", "sles-full/boot/x86_64/initrd-xen",
                     "slow/images/xen/vmlinuz", "slow/images/xen/initrd.img"):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"k" * ((4 << 20) if relative.startswith("slow/") else (256 << 10)))
    with RepositoryServer(root) as server:
        yield server


def installable(x, template, name, **keys):
    [t] = [v for v in x.VM.get_by_name_label(template) if x.VM.get_is_default_template(v)]
    vm = x.VM.clone(t, name)
    other = x.VM.get_other_config(vm)
    other["disks"] = other["disks"].replace('size="8589934592"', f'size="{16 * MiB}"')
    other.update(keys)
    x.VM.set_other_config(vm, other)
    x.VM.provision(vm)
    return vm


def cache_of(agent, x, vm):
    return os.path.join(agent.state_dir, "boot", x.VM.get_uuid(vm))


def refused(agent, x, vm, *fragments):
    before = x.VM.get_other_config(vm)
    details = failure(x.VM.start, vm, False, False)
    assert details[:2] == ["BOOTLOADER_FAILED", vm], details
    for fragment in fragments:
        assert fragment in details[2], details
    assert x.VM.get_power_state(vm) == "Halted"
    assert x.VM.get_other_config(vm) == before and x.VM.get_PV_bootloader(vm) == "eliloader"
    assert not os.path.exists(cache_of(agent, x, vm))
    return details[2]


def test_a_repository_nobody_answers(agent, x):
    vm = installable(x, "CentOS 5.0", "no server", **{"install-repository": "http://127.0.0.1:9/centos"})
    refused(agent, x, vm, "http://127.0.0.1:9/centos/images/xen/vmlinuz", "refused")


def test_a_repository_without_the_kernel(agent, x, repo):
    vm = installable(x, "CentOS 5.0", "no kernel", **{"install-repository": f"{repo.url}/nokernel"})
    message = refused(agent, x, vm, "no installer kernel found", "404")
    assert "images/pxeboot/vmlinuz" in message  # every candidate of the rule was tried


def test_a_kernel_without_its_initrd(agent, x, repo):
    vm = installable(x, "SUSE Linux Enterprise Server 10 SP1", "no initrd",
                     **{"install-repository": f"{repo.url}/sles"})
    refused(agent, x, vm, "boot/x86_64/initrd-xen", "404")


def test_a_truncated_download(agent, x, repo):
    repo.lies.add("centos/images/xen/initrd.img")
    try:
        vm = installable(x, "CentOS 5.0", "truncated", **{"install-repository": f"{repo.url}/centos"})
        refused(agent, x, vm, "truncated download", "initrd.img")
    finally:
        repo.lies.clear()


def test_keys_eliloader_cannot_follow(agent, x, repo):
    vm = installable(x, "CentOS 5.0", "bad keys", **{"install-repository": "gopher://h/x"})
    refused(agent, x, vm, "expected cdrom or an http, https, ftp or nfs URL")
    deb = installable(x, "Debian Bookworm 12", "debian over nfs", **{"install-repository": "nfs://h/debian"})
    refused(agent, x, deb, "install-methods")


def test_cdrom_without_a_readable_iso(agent, x, tmp_path):
    vm = installable(x, "CentOS 5.0", "no cd", **{"install-repository": "cdrom"})
    refused(agent, x, vm, "no ISO in its CD drive")
    isos = tmp_path / "isos"
    isos.mkdir()
    (isos / "garbage.iso").write_bytes(b"\x00" * (1 << 20))
    iso_image({"README.TXT": b"no kernel here"}, isos / "empty.iso")
    sr = x.SR.create(x.host.get_all()[0], {"location": str(isos)}, "0", "ISOs", "", "iso", "", False, {})
    try:
        by_name = {x.VDI.get_name_label(v): v for v in x.SR.get_VDIs(sr)}
        cd = x.VBD.create({"VM": vm, "VDI": by_name["garbage.iso"], "userdevice": "3", "bootable": False,
                           "mode": "RO", "type": "CD", "empty": False, "other_config": {},
                           "qos_algorithm_type": "", "qos_algorithm_params": {}})
        refused(agent, x, vm, "not a readable ISO 9660 image")
        x.VBD.eject(cd)
        x.VBD.insert(cd, by_name["empty.iso"])
        refused(agent, x, vm, "no installer kernel found", "images/xen/vmlinuz")
        x.VBD.destroy(cd)
    finally:
        for pbd in x.SR.get_PBDs(sr):
            x.PBD.unplug(pbd)
        x.SR.forget(sr)


def test_sles_second_round_without_an_installed_kernel(agent, x):
    vm = installable(x, "SUSE Linux Enterprise Server 10 SP1", "blank disk",
                     **{"install-repository": "http://127.0.0.1:9/sles", "install-round": "2"})
    refused(agent, x, vm, "round 2", "no ext2/3/4 file system")
    assert x.VM.get_PV_bootloader_args(vm) == ""


def test_downloads_wait_for_the_last_round_and_go_with_the_vm(agent, x, repo):
    """SLES's first round keeps the installer's files for the second; VM.destroy removes them."""
    vm = installable(x, "SUSE Linux Enterprise Server 10 SP1", "round one",
                     **{"install-repository": f"{repo.url}/sles-full"})
    x.VM.start(vm, False, False)
    assert x.VM.get_power_state(vm) == "Running"
    assert x.VM.get_other_config(vm)["install-round"] == "2" and x.VM.get_PV_bootloader(vm) == "eliloader"
    cache = cache_of(agent, x, vm)
    assert sorted(os.listdir(cache)) == ["initrd", "vmlinuz"]
    x.VM.hard_shutdown(vm)
    x.VM.destroy(vm)
    assert not os.path.exists(cache)


def test_an_nfs_export_that_cannot_be_mounted(agent, x):
    """Whether the host lacks the NFS client or nobody exports the path, the mount fails cleanly."""
    vm = installable(x, "CentOS 5.0", "no nfs", **{"install-repository": "nfs://127.0.0.1/no/such/export"})
    refused(agent, x, vm, "mounting 127.0.0.1:/no/such/export")


def wait_task(x, task, timeout=60.0):
    deadline = time.monotonic() + timeout
    while x.task.get_status(task) in ("pending", "cancelling"):
        assert time.monotonic() < deadline, "the task did not finish"
        time.sleep(0.1)
    return x.task.get_status(task)


def test_a_long_download_shows_progress_and_can_be_cancelled(agent, x, repo):
    repo.slow.update({"slow/images/xen/vmlinuz", "slow/images/xen/initrd.img"})
    try:
        vm = installable(x, "CentOS 5.0", "slow", **{"install-repository": f"{repo.url}/slow"})
        task = x.Async.VM.start(vm, False, False)
        seen = set()
        while x.task.get_status(task) == "pending" and len(seen) < 3:
            progress = float(x.task.get_progress(task))
            if 0 < progress < 1:
                seen.add(round(progress, 2))
            time.sleep(0.2)
        assert len(seen) >= 3, seen  # progress moved while the kernel was downloading
        assert wait_task(x, task) == "success" and x.VM.get_power_state(vm) == "Running"
        x.VM.hard_shutdown(vm)

        other = installable(x, "CentOS 5.0", "cancelled", **{"install-repository": f"{repo.url}/slow"})
        task = x.Async.VM.start(other, False, False)
        time.sleep(1.0)
        x.task.cancel(task)
        assert wait_task(x, task) == "cancelled"
        assert x.VM.get_power_state(other) == "Halted" and not os.path.exists(cache_of(agent, x, other))
        assert x.VM.get_other_config(other)["install-round"] == "1"
    finally:
        repo.slow.clear()
