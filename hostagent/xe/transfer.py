"""vm-export, vm-import, vdi-export, vdi-import: files streamed through the agent's
HTTP handlers (/export, /import, /export_raw_vdi, /import_raw_vdi) under a task.

As XenServer's xe does, the command makes a task, names it in the request
(`task_id=`), moves the bytes, then waits for the task and reports its outcome. The
bar shows the task's progress, or the bytes sent when the task has none yet.
"""

import contextlib
import http.client
import os
import time
import urllib.parse

from . import generic as G
from .command import SELECTOR_HELP, Command
from .errors import ConnectError, Failure, UsageError, XeError
from .tasks import Progress, StillPending, wait, wants_bar
from .vmcmds import select_vms

PIECE = 1 << 20
POLL = 0.5
BROKEN_WAIT = 5.0  # seconds to let a task end by itself once its transfer broke


class _Meter:
    """Progress while bytes move: the task's own figure, else bytes done / total."""

    def __init__(self, ctx, task, label, total=None):
        self.ctx, self.task, self.total = ctx, task, total
        self.done = 0
        self.bar = Progress(ctx.out, label) if wants_bar(ctx) else None
        self.next = 0.0

    def add(self, n):
        self.done += n
        now = time.monotonic()
        if self.bar is None or now < self.next:
            return
        self.next = now + POLL
        fraction = float(self.ctx.call("task.get_progress", self.task) or 0.0)
        if fraction <= 0.0 and self.total:
            fraction = self.done / self.total
        self.bar.update(fraction)

    def close(self):
        if self.bar is not None:
            self.bar.done()


def _url(path, **query):
    return path + "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})


def _task(ctx, label):
    return ctx.call("task.create", label, "xe")


def download(ctx, path, filename, label, **query):
    task = _task(ctx, label)
    conn = ctx.session.http()
    meter = _Meter(ctx, task, label)
    partial = filename != "-"
    local = False  # the break is on xe's side: writing the output failed
    try:
        conn.request("GET", _url(path, session_id=ctx.session.ref, task_id=task, **query))
        resp = conn.getresponse()
        if resp.status != 200:
            body = resp.read().decode("utf-8", "replace").strip()
            wait(ctx, task, label)  # the task carries the XenAPI error
            raise XeError(f"The agent refused the transfer: HTTP {resp.status} {body}")
        local = True  # opening, writing and closing the output: a failure there is xe's side
        with _sink(filename) as out:
            while True:
                local = False
                data = resp.read(PIECE)
                if not data:
                    break
                local = True
                out.write(data)
                local = False
                meter.add(len(data))
            local = True
        local = False
        partial = False
    except (OSError, http.client.HTTPException) as e:
        broken = e
    else:
        broken = None
    finally:
        meter.close()
        conn.close()
        if partial and filename != "-" and os.path.exists(filename):
            os.unlink(filename)
    return _outcome(ctx, task, label, broken, local)


def _outcome(ctx, task, label, broken, local=False):
    """The task's result; when the bytes stopped early, the task's error says why (a cancel,
    a disk error), else the connection's. After a break on this side (the reader of stdout
    went away) the task's error only echoes xe leaving, so the break is what is reported;
    a task still running then is cancelled rather than waited for."""
    if broken is None:
        return wait(ctx, task, label)
    try:
        wait(ctx, task, label, timeout=BROKEN_WAIT)
    except Failure:
        if not local:
            raise
    except StillPending:
        with contextlib.suppress(StillPending, Failure):  # the break below is what xe reports
            ctx.call("task.cancel", task)
            wait(ctx, task, label, timeout=BROKEN_WAIT)
    raise ConnectError(f"The transfer failed: {broken}")


def _sink(filename):
    return os.fdopen(os.dup(1), "wb") if filename == "-" else open(filename, "wb")


def upload(ctx, path, filename, label, **query):
    try:
        size = os.path.getsize(filename)
        source = open(filename, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as e:
        raise UsageError(f"Cannot read {filename}: {e.strerror}") from None
    task = _task(ctx, label)
    conn = ctx.session.http()
    meter = _Meter(ctx, task, label, total=size)
    try:
        with source:
            conn.putrequest("PUT", _url(path, session_id=ctx.session.ref, task_id=task, **query))
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            while True:
                data = source.read(PIECE)
                if not data:
                    break
                try:
                    conn.send(data)
                except OSError:
                    break  # the agent stopped reading: its answer and the task say why
                meter.add(len(data))
        resp = conn.getresponse()
        resp.read()
        if resp.status not in (200, 302):
            wait(ctx, task, label)
            raise XeError(f"The agent refused the transfer: HTTP {resp.status}")
    except (OSError, http.client.HTTPException) as e:
        broken = e
    else:
        broken = None
    finally:
        meter.close()
        conn.close()
    return _outcome(ctx, task, label, broken)


def vm_export(ctx):
    filename = ctx.param("filename")
    compress = ctx.param("compress")
    path = "/export_metadata" if ctx.flag("metadata") else "/export"
    found = select_vms(ctx, consumed=("filename", "compress", "metadata", "preserve-power-state"),
                       allow_templates=True)
    ref = found[0][0]
    use = None if compress is None else ("gzip" if compress.lower() in ("true", "gzip") else compress)
    download(ctx, path, filename, "export", ref=ref, use_compression=use)
    if filename != "-":
        ctx.write("Export succeeded\n")


def vm_import(ctx):
    query = {}
    if ctx.param("sr-uuid") is not None:
        query["sr_id"] = ctx.call("SR.get_by_uuid", ctx.param("sr-uuid"))
    if ctx.flag("force"):
        query["force"] = "true"
    if ctx.flag("preserve"):
        query["restore"] = "true"
    path = "/import_metadata" if ctx.flag("metadata") else "/import"
    refs = upload(ctx, path, ctx.param("filename"), "import", **query) or []
    if isinstance(refs, str):
        refs = [refs]
    ctx.write(",".join(ctx.call("VM.get_uuid", r) for r in refs) + "\n")


def vdi_export(ctx):
    vdi = G.by_uuid(ctx, ctx.model.cls("VDI"))
    download(ctx, "/export_raw_vdi", ctx.param("filename"), "export", vdi=vdi,
             format=ctx.param("format", "raw"))


def vdi_import(ctx):
    vdi = G.by_uuid(ctx, ctx.model.cls("VDI"))
    upload(ctx, "/import_raw_vdi", ctx.param("filename"), "import", vdi=vdi, format=ctx.param("format", "raw"))


def register(reg, model):
    reg.add(Command("vm-export", vm_export, required=("filename",),
                    optional=("vm", "compress", "preserve-power-state"), flags=("metadata",),
                    open=True, group="vm", fields=True,
                    help="Write the VM as an XVA file (filename=- for stdout; compress=true|gzip|zstd; "
                         f"--metadata for its records only). Select with {SELECTOR_HELP}."))
    reg.add(Command("vm-import", vm_import, required=("filename",), optional=("sr-uuid",),
                    flags=("force", "preserve", "metadata"), group="vm",
                    help="Make VMs from an XVA file, their disks on sr-uuid= (default: the pool's "
                         "default SR); prints the new VMs' uuids."))
    reg.add(Command("vdi-export", vdi_export, required=("uuid", "filename"), optional=("format",),
                    group="vdi", help="Write the disk's contents to a file (format=raw or vhd)."))
    reg.add(Command("vdi-import", vdi_import, required=("uuid", "filename"), optional=("format",),
                    group="vdi", help="Write a file (format=raw or vhd) into the disk."))
