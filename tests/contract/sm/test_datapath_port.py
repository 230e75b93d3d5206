"""The storage port's attach API over the real datapath: attach for an owner, the
attachments found again by a new Storage object (an agent restart), detach twice.

The port runs here on asyncio with stand-ins for the server's pieces (a worker pool
from the event loop, locks that are always free): only the attach API is under test.
"""

import asyncio
import os
import uuid as uuidlib

import pytest

from hostagent.backends.storage import Attached, Storage, StorageError
from sm import vhd
from tests.contract.sm.nbdclient import gone, qemu_io

MiB = 1 << 20


class FreeLock:
    async def acquire(self, exclusive, timeout):
        return True

    def release(self, exclusive):
        pass


def port(state):
    loop = asyncio.get_running_loop()
    return Storage(state, lambda fn, *a: loop.run_in_executor(None, fn, *a), FreeLock,
                   asyncio.ensure_future, environ={})


def test_attach_restart_detach_through_the_port(tmp_path, state, nbdkit):
    (tmp_path / "srs").mkdir()
    sr, config = str(uuidlib.uuid4()), {"location": str(tmp_path / "srs")}

    async def scenario():
        storage = port(state)
        drv = storage.driver("file", sr, config)
        await storage.call(drv, "create", 0)
        await storage.call(drv, "attach")
        disk = (await storage.call(drv, "vol_create", str(uuidlib.uuid4()), 16 * MiB)).uuid
        with vhd.open(drv.volumes.file(disk), writable=True) as image:
            image.write(0, b"\xab" * MiB)
        await storage.call(drv, "vol_snapshot", disk, str(uuidlib.uuid4()))
        lone = (await storage.call(drv, "vol_create", str(uuidlib.uuid4()), 16 * MiB)).uuid

        chain = await storage.attach(drv, disk, True, "vbd-1")
        assert isinstance(chain, Attached) and (chain.kind, chain.format) == ("nbd", "raw")
        assert (chain.sr, chain.vdi, chain.owner, chain.writable) == (sr, disk, "vbd-1", True)
        qemu_io(chain.uri, "read -P 0xab 0 1M", "write -P 0xcd 1M 1M")
        file = await storage.attach(drv, lone, False, "vbd-2")
        assert (file.kind, file.format, file.path) == ("file", "vpc", drv.volumes.file(lone))
        assert await storage.attach(drv, disk, True, "vbd-1") == chain  # the same again
        with pytest.raises(StorageError) as info:
            await storage.attach(drv, disk, True, "vbd-3")
        assert info.value.code == "VDI_IN_USE"

        again = port(state)  # the agent restarted
        found = {a.owner: a for a in await again.attachments()}
        assert found == {"vbd-1": chain, "vbd-2": file}
        pid = drv.datapath.servers.serving(os.path.basename(chain.path)[:-len(".sock")])
        qemu_io(chain.uri, "read -P 0xcd 1M 1M")
        drv2 = again.driver("file", sr, config)
        for _ in range(2):
            await again.detach(drv2, disk, "vbd-1")
            await again.detach(drv2, lone, "vbd-2")
        assert await again.attachments() == [] and gone(pid)
        await again.call(drv2, "vol_destroy", lone)  # nothing holds it any more

    asyncio.run(scenario())
