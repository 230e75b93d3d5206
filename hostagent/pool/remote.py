"""Another member's ports, as the master's actions use them: proxies to its agent.

`RemoteDomains` and `RemoteStorage` have the methods of the local domains and storage
ports that host-bound actions call (VM power, VBD/VIF plugs, disks attached for a
domain); each call goes to the member's `POST /pool/v1/port` (wire.py says what may be
called and how values travel) and the member runs it on its own local ports. A port's
exception comes back as the same exception; a member that cannot be reached is
`CANNOT_CONTACT_HOST [host]` (Membership.call). What is not forwarded yet answers
OPERATION_NOT_ALLOWED saying so, before anything runs.
"""

import dataclasses
from collections.abc import Callable

from ..datamodel.errors import ApiError
from . import wire
from .remote_links import RemoteLinks


def not_forwarded(what: str) -> ApiError:
    return ApiError("OPERATION_NOT_ALLOWED", f"{what} on another pool member is not forwarded yet")


class _Remote:
    def __init__(self, caller: Callable, port: str):
        self._caller, self._port = caller, port

    async def _call(self, op: str, *args):
        return await self._caller(self._port, op, args)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise not_forwarded(f"{self._port}.{name}")


class RemoteDomains(_Remote):
    """The member's domains port (backends/hypervisor/port.DomainPort's interface)."""

    def __init__(self, caller: Callable):
        super().__init__(caller, "domains")
        self._caps = None

    async def call(self, op: str, *args):
        if op not in wire.ALLOWED["domains"]:
            raise not_forwarded(f"the hypervisor's {op}")
        return await self._call(op, *args)

    async def capabilities(self):
        if self._caps is None:
            self._caps = await self._call("capabilities")
        return self._caps

    async def run(self, fn, *args):
        """Blocking dom0 work beside the hypervisor: only a member's own guest calls
        (RemoteXenstore, RemoteGuestAgent), which already run on the member."""
        if isinstance(getattr(fn, "__self__", None), (RemoteXenstore, RemoteGuestAgent)):
            return await fn(*args)
        raise not_forwarded("dom0 work beside the hypervisor")


class RemoteXenstore(_Remote):
    """The member's xenstore, for the keys a VM's xenstore_data puts under vm-data."""

    def __init__(self, caller: Callable):
        super().__init__(caller, "guest")

    async def write(self, domid: int, values: dict):
        return await self._call("write", domid, dict(values))

    async def read_tree(self, domid: int, path: str):
        return await self._call("read_tree", domid, path)


class RemoteGuestAgent(_Remote):
    """What the member's guest agent reads of a guest (OS, addresses, PV drivers)."""

    periodic = False  # domains.guest_metrics asks the member's driver whether to read again

    def __init__(self, caller: Callable):
        super().__init__(caller, "guest")

    async def facts(self, domid: int, vm: dict, vifs):
        # what the member's agent may read of the records: the VM's name and other_config,
        # its VIFs' devices and MACs (TestGuestAgent's stand-in addresses)
        return await self._call("facts", domid, {"name_label": vm["name_label"],
                                                 "other_config": dict(vm["other_config"])},
                                [{"device": v["device"], "MAC": v["MAC"]} for v in vifs])


class RemoteStorage(_Remote):
    """The member's storage port, for disks attached for its domains."""

    def __init__(self, caller: Callable, local=None):
        super().__init__(caller, "storage")
        self._local = local  # this host's port: what every member's agent knows alike (SR types)

    def driver(self, sr_type: str, sr_uuid: str, device_config: dict):
        if self._local is not None:
            self._local.content_type(sr_type)  # an unknown type is refused here, as on the member
        return wire.DriverRef(sr_type, sr_uuid, dict(device_config))

    def types(self):
        return self._local.types()

    def content_type(self, sr_type: str) -> str:
        return self._local.content_type(sr_type)

    def capabilities(self, sr_type: str):
        return self._local.capabilities(sr_type)

    async def validate(self, drv):
        return await self._call("validate", drv)

    async def attach(self, drv, vdi_uuid: str, writable: bool, owner: str):
        return await self._call("attach", drv, vdi_uuid, writable, owner)

    async def detach(self, drv, vdi_uuid: str, owner: str):
        return await self._call("detach", drv, vdi_uuid, owner)

    async def call(self, drv, op: str, *args):
        """An SR driver's call on the member (wire.ALLOWED["sr"])."""
        if op not in wire.ALLOWED["sr"]:
            raise not_forwarded(f"the storage driver's {op}")
        return await self._caller("sr", op, (drv, *args))

    async def scratch(self, op: str, file: "wire.ScratchFile"):
        """A file of the member's scratch dir: its "size", or "remove" it."""
        return await self._caller("scratch", op, (file,))


def member_ports(local_ports, caller: Callable, links_netns=None):
    """The Ports of a member: its domains, storage, xenstore, guest agent and (when its agent
    manages them: `links_netns` its namespace, "" its own) links through `caller(port, op,
    args)`; what else runs in its dom0 (consoles, VIF filters) not yet."""
    links = RemoteLinks(caller, links_netns) if links_netns is not None else None
    return dataclasses.replace(local_ports, domains=RemoteDomains(caller),
                               storage=RemoteStorage(caller, local_ports.storage), hypervisor=None,
                               xenstore=RemoteXenstore(caller), guest_agent=RemoteGuestAgent(caller),
                               consoles=None, links=links, filters=None, scratch_dir="")
