"""Removing a VM's boot files (an rmtree) goes through the server's worker pool
(ports.run_blocking), never inline on the reactor: VM.destroy and eliloader's clean-ups."""

import asyncio
import contextlib

from hostagent.actions import eliloader, vm
from hostagent.actions.context import Ports, Runtime
from hostagent.datamodel.api import build_api
from hostagent.db.store import Store


class Pool:
    """Stands in for the server's deferToThread: records what it ran, then runs it."""

    def __init__(self):
        self.ran = []

    async def __call__(self, fn, *args):
        self.ran.append(fn)
        return fn(*args)


def _ctx(tmp_path, pool):
    store = Store(build_api())
    with store.transaction():
        host = store.create("host", {"name_label": "h"})
    ports = Ports(storage=None, intents=None, authenticate=None, change_password=None,
                  boot_dir=str(tmp_path / "boot"), run_blocking=pool)
    rt = Runtime(store=store, sessions=None, tasks=None, events=None, ports=ports, host=host,
                 clock=lambda: 0.0, sleep=None)
    return rt.internal()


def test_vm_destroy_forgets_the_boot_files_in_a_worker(tmp_path):
    pool = Pool()
    ctx = _ctx(tmp_path, pool)
    ref = vm.create(ctx, {"name_label": "installing"})
    uuid = ctx.store.get("VM", ref)["uuid"]
    (tmp_path / "boot" / uuid).mkdir(parents=True)
    (tmp_path / "boot" / uuid / "vmlinuz").write_bytes(b"k")
    asyncio.run(vm.destroy(ctx, ref))
    assert eliloader.forget in pool.ran
    assert not (tmp_path / "boot" / uuid).exists()


def test_abandon_removes_the_start_files_in_a_worker(tmp_path):
    pool = Pool()
    ctx = _ctx(tmp_path, pool)
    directory = tmp_path / "boot" / "some-uuid"
    directory.mkdir(parents=True)
    asyncio.run(eliloader.abandon(ctx, "OpaqueRef:x", eliloader.Prepared(boot=None, directory=str(directory))))
    assert eliloader._remove in pool.ran
    assert not directory.exists()


def test_a_failed_vm_copy_removes_its_half_made_vm(tmp_path):
    from hostagent.actions import vm_copies
    pool = Pool()
    ctx = _ctx(tmp_path, pool)
    source = vm.create(ctx, {"name_label": "source"})
    with ctx.store.transaction():
        ctx.store.create("VBD", {"VM": source, "VDI": "OpaqueRef:disk", "type": "Disk", "empty": False,
                                 "userdevice": "0"})

    async def disk_of(vdi):
        raise RuntimeError("the disk copy failed")

    with contextlib.suppress(RuntimeError):
        asyncio.run(vm_copies._new_vm(ctx, source, "copy", disk_of))
    assert list(ctx.store.all("VM")) == [source]
    assert eliloader.forget in pool.ran
