"""libvhdi (pyvhdi, from libvhdi-python): the independent VHD reader the sm tests check with."""

import os

import pytest

pyvhdi = pytest.importorskip("pyvhdi", reason="libvhdi-python is the independent VHD reader")


def libvhdi_read(path, offset, length):
    """Read a VHD's virtual bytes with libvhdi, opening its parent chain by file name."""
    opened = []

    def open_chain(p):
        f = pyvhdi.file()
        f.open(p)
        opened.append(f)
        name = f.parent_filename
        if name:
            parent = os.path.join(os.path.dirname(p), os.path.basename(name.replace("\\", "/")))
            f.set_parent(open_chain(parent))
        return f

    try:
        return open_chain(path).read_buffer_at_offset(length, offset)
    finally:
        for f in opened:
            f.close()
