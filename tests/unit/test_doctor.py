"""`hostagent doctor`: on this machine (no Xen) it fails and says Xen is missing; on a
described dom0 each finding decides the exit status as documented."""

import io
import os
import subprocess
import sys

from hostagent import doctor


def test_this_machine_is_no_dom0_and_doctor_says_so():
    done = subprocess.run([sys.executable, "-m", "hostagent", "doctor"], capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("FAIL") and "Xen " in line + " " and "not running under Xen" in line
               for line in lines), done.stdout
    assert lines[-1].startswith("doctor: missing: Xen"), done.stdout
    assert done.stderr == "", done.stderr


class Dom0(doctor.System):
    """A dom0 with everything, changed per test through the attributes."""

    def __init__(self, **changes):
        self.files = {"/sys/hypervisor/type": "xen\n", "/proc/xen/capabilities": "control_d\n",
                      "/sys/hypervisor/version/major": "4\n", "/sys/hypervisor/version/minor": "17\n",
                      "/sys/hypervisor/version/extra": ".5\n",
                      "/proc/meminfo": "MemTotal: 900000 kB\nMemAvailable: 600000 kB\n"}
        self.tools = {"xenstore-read", "xenstore-write", "xenstore-ls", "nbdkit", "nbd-client", "mount.nfs"}
        self.dirs = {"/sys/class/net": ["eth0", "xenbr0"], "/sys/class/net/xenbr0/bridge": ["bridge_id"]}
        self.users = set(doctor.QEMU_USERS)
        self.driver, self.free = "Xen", 900 << 20
        self.python_plugin = True
        self.__dict__.update(changes)

    def read(self, path):
        return self.files.get(path)

    def which(self, name):
        return f"/usr/bin/{name}" if name in self.tools else None

    def run(self, argv, timeout=10.0):
        if argv[:2] == ["xenstore-read", "domid"]:
            return 0, "0"
        if argv[:2] == ["nbdkit", "python"]:
            return (0, "python 1.32") if self.python_plugin else (1, "cannot open plugin")
        raise AssertionError(argv)

    def listdir(self, path):
        return self.dirs.get(path, [])

    def user_exists(self, name):
        return name in self.users

    def libvirt(self, uri, timeout=15.0):
        if self.driver is None:
            raise RuntimeError("Failed to connect socket")
        return self.driver, self.free


def report(system):
    out = io.StringIO()
    status = doctor.main([], system=system, out=out)
    lines = out.getvalue().splitlines()
    return status, {line.split()[1]: line.split()[0] for line in lines[:-1]}, lines


def test_a_complete_dom0_passes():
    status, found, lines = report(Dom0())
    assert status == 0, lines
    assert set(found.values()) == {"ok"}, lines
    assert "Xen 4.17.5, this is dom0" in lines[0]
    assert lines[-1] == "doctor: this dom0 has what the agent needs"


def test_a_missing_requirement_fails_and_is_named():
    for system, name in ((Dom0(tools={"xenstore-read", "nbdkit", "nbd-client"}), "xenstore"),
                         (Dom0(driver="QEMU"), "libvirt"), (Dom0(driver=None), "libvirt"),
                         (Dom0(python_plugin=False), "nbdkit"), (Dom0(free=64 << 20), "memory"),
                         (Dom0(files={"/proc/xen/capabilities": ""} | {"/sys/hypervisor/type": "xen"}), "Xen")):
        status, found, lines = report(system)
        assert status == 1 and found[name] == "FAIL", (name, lines)
        assert lines[-1] == f"doctor: missing: {name}", lines


def test_what_only_some_features_need_is_a_warning():
    status, found, lines = report(Dom0(dirs={"/sys/class/net": ["eth0"]}, users=set()))
    assert status == 0, lines
    assert found["bridges"] == "warn" and found["qemu"] == "warn", lines


def test_a_missing_mount_nfs_is_a_warning_naming_nfs_common():
    tools = Dom0().tools - {"mount.nfs"}
    status, found, lines = report(Dom0(tools=tools))
    assert status == 0, lines
    assert found["nfs"] == "warn", lines
    assert any("nfs-common" in line for line in lines if line.startswith("warn")), lines
