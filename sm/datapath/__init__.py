"""The datapath: how an attached volume reaches a hypervisor on this host.

qemu (KVM, and Xen's qdisk backend) reads a differencing VHD as if it had no
parent, so a VHD chain is served over NBD by nbdkit running ``plugin.py``
over ``sm.vhd``: one server per attachment, on a Unix socket under
``<state_dir>/datapath``, started by ``Driver.vol_attach`` and stopped by
``vol_detach``. A VHD without a parent, an LVM volume and an ISO image are
handed over as a file or block device path.

Modules: attach (``Datapath``, a driver's attach/detach: booking, record,
server, in a crash-safe order), records (the attachment records), server
(``NbdServers``: starting, finding and stopping nbdkit), export (one VHD chain
as the plugin serves it), plugin (the nbdkit plugin itself; run by nbdkit,
never imported here).
"""

from sm.datapath.attach import Datapath, attachments

__all__ = ["Datapath", "attachments"]
