"""Suspend images on their way between a domain and its suspend VDI, on the VM's host.

The hypervisor saves a domain into a file in its host's scratch dir, and the image goes
from there into a VDI on an SR plugged on that host (and back out for a resume). On this
host the file is a path; on a pool member it is a `wire.ScratchFile`, a name the member
resolves in its own scratch dir (pool_forward.serve_port), so the master never names a
path on another host.
"""

import contextlib
import logging
import os

from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..pool import wire

log = logging.getLogger("hostagent.vm")


def image(ctx, rec: dict):
    """Where the VM's image passes through on ctx's host."""
    name = f"{rec['uuid']}.img"
    if ctx.remote:
        return wire.ScratchFile(name)
    os.makedirs(ctx.ports.scratch_dir, mode=0o700, exist_ok=True)
    return os.path.join(ctx.ports.scratch_dir, name)


async def size(ctx, img) -> int:
    if isinstance(img, wire.ScratchFile):
        return await ctx.ports.storage.scratch("size", img)
    return os.path.getsize(img)


async def remove(ctx, img) -> None:
    """Best effort: a member that cannot be told keeps the file until the next image of
    the same VM replaces it."""
    if isinstance(img, wire.ScratchFile):
        try:
            await ctx.ports.storage.scratch("remove", img)
        except (ApiError, StorageError) as e:
            log.warning("cannot remove suspend image %s on host %s: %s", img.name, ctx.host, e)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(img)
