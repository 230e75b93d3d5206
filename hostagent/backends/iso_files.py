"""Files read out of an ISO 9660 image (a CD in a VM's drive): the only user of pycdlib.

Blocking; call in a worker thread. Paths are looked up as Rock Ridge, Joliet and UDF
names, then as plain ISO 9660 names (upper case, `;1`). Failures are
fetch.FetchError, like the network repositories', `missing` when the image has no
such file.
"""

import contextlib
import os
from typing import Optional

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException, PyCdlibInvalidInput

from .fetch import FetchCancelled, FetchError, Progress


class IsoTree:
    """An ISO image opened from a file object, presented as an install source:
    `with tree: tree.copy(relative, dest, progress)`."""

    def __init__(self, fileobj, name: str):
        self.fileobj = fileobj
        self.name = name
        self.iso: Optional[pycdlib.PyCdlib] = None

    def __enter__(self) -> "IsoTree":
        iso = pycdlib.PyCdlib()
        try:
            iso.open_fp(self.fileobj)
        except (PyCdlibException, OSError, ValueError, IndexError) as e:
            raise FetchError(f"{self.name}: not a readable ISO 9660 image ({e})") from None
        self.iso = iso
        return self

    def __exit__(self, *exc) -> None:
        if self.iso is not None:
            with contextlib.suppress(PyCdlibException):
                self.iso.close()
            self.iso = None

    def describe(self, relative: str) -> str:
        return f"{self.name}:/{relative.lstrip('/')}"

    def copy(self, relative: str, dest: str, progress: Progress) -> int:
        path = "/" + relative.lstrip("/")
        where = self.describe(relative)
        part = dest + ".part"
        try:
            for kind, name in self._names(path):
                try:
                    with open(part, "wb") as out:
                        self.iso.get_file_from_iso_fp(_Counting(out, progress, where), **{kind: name})
                except PyCdlibInvalidInput as e:
                    if "Could not find" in str(e):
                        continue  # not under this kind of name: try the next
                    raise FetchError(f"{where}: {e}") from None
                except PyCdlibException as e:
                    raise FetchError(f"{where}: {e}") from None
                os.replace(part, dest)
                return os.path.getsize(dest)
            raise FetchError(f"{where}: no such file on the image", missing=True)
        except OSError as e:
            raise FetchError(f"{where}: {e}") from None
        finally:
            if os.path.exists(part):
                os.unlink(part)

    def _names(self, path: str):
        iso = self.iso
        if iso.has_rock_ridge():
            yield "rr_path", path
        if iso.has_joliet():
            yield "joliet_path", path
        if iso.has_udf():
            yield "udf_path", path
        yield "iso_path", path.upper() + ";1"


class _Counting:
    """The output file, counting bytes into the progress and stopping when cancelled."""

    def __init__(self, out, progress: Progress, where: str):
        self.out, self.progress, self.where = out, progress, where

    def write(self, data) -> int:
        if self.progress.cancel:
            raise FetchCancelled(f"{self.where}: cancelled")
        self.progress.done += len(data)
        return self.out.write(data)
