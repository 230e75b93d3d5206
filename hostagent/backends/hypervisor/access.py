"""Letting the hypervisor's own processes reach the state dir's disks and NBD sockets.

Under `qemu:///system` libvirt runs qemu as `libvirt-qemu` (Debian's default), not as
root. libvirt hands each disk file to that user itself, but qemu must also be able to
walk to it, and to connect to the NBD sockets the datapath serves VHD chains on. So,
where that group exists and the driver is QEMU, the state dir and the local SR's directory
become group `libvirt-qemu` with group search only (0710), and the datapath's directory
group-owned and setgid (02750), so the sockets nbdkit makes there belong to that group
(the datapath makes them group-writable). Nobody else gains any access. Xen's backends run
as root and need none of this.
"""

import grp
import logging
import os

log = logging.getLogger("hostagent.hypervisor")

QEMU_GROUP = "libvirt-qemu"


def grant_state_access(state_dir: str, driver: str, group: str = QEMU_GROUP) -> bool:
    """Prepare the state dir for the driver's processes; True when anything was granted."""
    if driver != "QEMU":
        return False
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        log.warning("no group %s: qemu may not reach disks and NBD sockets under %s", group, state_dir)
        return False
    for path, mode in ((state_dir, 0o710), (os.path.join(state_dir, "sr"), 0o710),
                       (os.path.join(state_dir, "datapath"), 0o2750)):
        os.makedirs(path, mode=mode & 0o777, exist_ok=True)
        os.chown(path, -1, gid)
        os.chmod(path, mode)
    return True
