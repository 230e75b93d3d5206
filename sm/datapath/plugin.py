"""The nbdkit plugin serving one VHD chain: nbdkit's embedded Python runs this file.

    nbdkit -U SOCKET python sm/datapath/plugin.py file=/sr/leaf.vhd writable=1 log=LOG

Callbacks only map NBD requests onto ``sm.datapath.export`` (and so onto
``sm.vhd``); they keep no state of their own beyond the one export, whose whole
chain ``get_ready`` opens, so a broken chain fails the start instead of a read.
``sm`` must be importable: the launcher (``server.py``) puts its parent directory
on PYTHONPATH (nbdkit adds nothing to ``sys.path``). The agent never imports this.

Thread model: SERIALIZE_ALL_REQUESTS. One ``Image`` serves every connection
(two images writing one file would allocate the same space twice) and it is
not thread-safe, so requests must reach it one at a time; the GIL would
serialise the Python work anyway. Because every connection sees the same
image and a flush fsyncs its one file, multi-conn is safe to advertise.
FUA is emulated by nbdkit with a flush. No trim (VHD cannot give space back
here); zero writes zeros only where the disk does not read as zeros already.
"""

import errno
import os

import nbdkit

from sm.datapath.export import VhdExport

API_VERSION = 2

_config = {"file": None, "writable": "0", "log": None}
_export = []  # the one VhdExport, once get_ready opened it


def config(key, value):
    if key not in _config:
        raise ValueError(f"unknown parameter {key!r} (expected file=PATH, writable=0|1, "
                         f"log=PATH)")
    _config[key] = value


def config_complete():
    if not _config["file"]:
        raise ValueError("file=PATH (the leaf VHD) is required")
    if _config["writable"] not in ("0", "1"):
        raise ValueError(f"writable must be 0 or 1, not {_config['writable']!r}")


def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS


def get_ready():
    _export.append(VhdExport(_config["file"], _config["writable"] == "1"))


def after_fork():
    """In the server nbdkit forked into the background (its stderr is /dev/null by now):
    what nbdkit logs from here on (--log=stderr) goes to the log file."""
    if _config["log"]:
        fd = os.open(_config["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.dup2(fd, 2)
        os.close(fd)


def cleanup():
    while _export:
        _export.pop().close()


def open(readonly):  # noqa: A001 - nbdkit looks the callback up by this name
    export = _export[0]
    if not readonly and not export.writable:
        nbdkit.set_error(errno.EROFS)
        raise PermissionError(f"{export.path} is served read-only")
    return export


def get_size(h):
    return h.size


def can_write(h):
    return h.writable


def can_flush(h):
    return h.writable


def can_fua(h):
    return nbdkit.FUA_EMULATE if h.writable else nbdkit.FUA_NONE


def can_multi_conn(h):
    return True


def can_trim(h):
    return False


def can_zero(h):
    return h.writable


def can_fast_zero(h):
    return False


def pread(h, buf, offset, flags):
    try:
        h.readinto(buf, offset)
    except OSError as exc:
        _fail(exc)


def pwrite(h, buf, offset, flags):
    try:
        h.write(buf, offset)
    except OSError as exc:
        _fail(exc)


def zero(h, count, offset, flags):
    try:
        h.zero(count, offset)
    except OSError as exc:
        _fail(exc)


def flush(h, flags):
    try:
        h.flush()
    except OSError as exc:
        _fail(exc)


def _fail(exc):
    """Pass the system's errno on to the client (ENOSPC lets qemu pause the guest instead
    of reporting EIO), then let nbdkit log the exception."""
    if exc.errno:
        nbdkit.set_error(exc.errno)
    raise exc
