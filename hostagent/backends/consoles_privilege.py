"""Which user the device models (qemu, which takes guest input and serves graphical consoles)
run as: read from the machine, never assumed.

KVM (libvirt's qemu driver): `user = "..."` in /etc/libvirt/qemu.conf, else the user running
qemu processes now, else the Debian build's default `libvirt-qemu`. Xen (libxl): device models
run unprivileged when the qemu-deprivilege users exist (`xen-qemuuser-range-base`, one uid per
domain, or the shared `xen-qemuuser-shared`), as root otherwise. Other drivers run no device
model.
"""

import os
import pwd
import re
from dataclasses import dataclass
from typing import Optional

QEMU_CONF = "/etc/libvirt/qemu.conf"
LIBVIRT_DEFAULT_USER = "libvirt-qemu"
XEN_USERS = ("xen-qemuuser-range-base", "xen-qemuuser-shared")


@dataclass(frozen=True)
class DeviceModelUser:
    user: str  # "" when the driver runs no device model
    privileged: bool  # runs as root
    source: str  # how it was found (for the log and host.other_config)


def device_model_user(driver: str, qemu_conf: str = QEMU_CONF, proc: str = "/proc") -> DeviceModelUser:
    if driver == "QEMU":
        configured = _qemu_conf_user(qemu_conf)
        if configured is not None:
            return DeviceModelUser(configured, _is_root(configured), f"{qemu_conf} user=")
        running = _running_qemu_user(proc)
        if running is not None:
            return DeviceModelUser(running, _is_root(running), "the user of a running qemu")
        return DeviceModelUser(LIBVIRT_DEFAULT_USER, False, "libvirt's default (qemu.conf sets no user)")
    if driver == "Xen":
        for name in XEN_USERS:
            if _user_exists(name):
                return DeviceModelUser(name, False, "libxl's qemu-deprivilege user")
        return DeviceModelUser("root", True, f"none of {', '.join(XEN_USERS)} exists")
    return DeviceModelUser("", False, f"the {driver} driver runs no device model")


def _qemu_conf_user(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    found = re.findall(r'^\s*user\s*=\s*"([^"]*)"', text, re.MULTILINE)
    return found[-1].lstrip("+") if found else None  # the last setting wins, as in libvirt


def _running_qemu_user(proc: str) -> Optional[str]:
    """The owner of a qemu that libvirt started (its `-name guest=...` argument): other qemus on
    the machine (a lab's, a user's) say nothing of libvirt's settings."""
    try:
        names = os.listdir(proc)
    except OSError:
        return None
    for pid in names:
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
                argv = f.read().split(b"\0")
            uid = os.stat(os.path.join(proc, pid)).st_uid
        except OSError:
            continue
        if not argv or b"qemu-system" not in os.path.basename(argv[0]) or not any(
                a == b"-name" and b.startswith(b"guest=") for a, b in zip(argv, argv[1:], strict=False)):
            continue
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)
    return None


def _is_root(user: str) -> bool:
    if user.isdigit():
        return int(user) == 0
    try:
        return pwd.getpwnam(user).pw_uid == 0
    except KeyError:
        return user == "root"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
