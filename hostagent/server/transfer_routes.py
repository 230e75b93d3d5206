"""The transfer handlers on the agent's router: VMs and disks in and out over HTTP."""

from twisted.python.threadpool import ThreadPool

from .transfer_common import Transfers
from .transfer_export import ExportHandler
from .transfer_import import ImportHandler
from .transfer_raw import ExportRawHandler, ImportRawHandler

TRANSFER_THREADS = 8  # transfers running at once; each holds one thread while it runs


def transfer_pool() -> ThreadPool:
    return ThreadPool(1, TRANSFER_THREADS, name="transfer")


def register(router, runtime, encoder, reactor, pool) -> Transfers:
    """Route /export, /export_metadata, /export_raw_vdi (GET) and /import,
    /import_metadata, /import_raw_vdi (PUT, streamed) with xapi's authentication."""
    t = Transfers(runtime, encoder, reactor, pool)
    router.route("/export", ExportHandler(t))
    router.route("/export_metadata", ExportHandler(t, metadata=True))
    router.route("/export_raw_vdi", ExportRawHandler(t))
    router.route("/import", ImportHandler(t), streaming=True)
    router.route("/import_metadata", ImportHandler(t, metadata=True), streaming=True)
    router.route("/import_raw_vdi", ImportRawHandler(t), streaming=True)
    return t
