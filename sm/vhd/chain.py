"""Differencing chains as a storage driver uses them: children, snapshots, clones, coalescing.

File names are the caller's: these helpers create, rename and re-link only the
paths they are given. A VHD that has children must not be written again
(their sectors that are not local read through to it); `snapshot` and
`clone` follow that rule by freezing the current contents in a base file.
"""

import os

from . import create, image, meta
from .errors import (NotDifferencingError, ParentMismatchError, ParentMissingError, VhdError)

MAX_DEPTH = 1000


def make_child(parent_path, child_path, **kwargs):
    """Create an empty differencing VHD at `child_path` over `parent_path`; returns child_path."""
    return create.create_differencing(child_path, parent_path, **kwargs)


def snapshot(path, base_path, snapshot_path=None):
    """Freeze the contents of the leaf VHD at `path`.

    `path` is renamed to `base_path` (which must not exist; best on the same filesystem, where
    rename is atomic) and becomes read-only from then on; a new empty child of it takes `path`,
    so users of `path` keep seeing the same bytes and write into the child. With
    `snapshot_path`, a second child there is the snapshot (XenServer's layout: both leaves
    over a hidden base); without, `base_path` itself is the snapshot. `path` must be a leaf:
    children of it would lose their parent. On failure everything is put back.
    Returns `base_path`."""
    if os.path.lexists(base_path):
        raise FileExistsError(base_path)
    image.open(path).close()                     # a VHD at all, before anything moves
    os.rename(path, base_path)
    made = []
    try:
        made.append(make_child(base_path, path))
        if snapshot_path is not None:
            made.append(make_child(base_path, snapshot_path))
    except BaseException:
        for p in made:
            os.unlink(p)
        os.rename(base_path, path)
        raise
    return base_path


def clone(path, clone_path, base_path=None):
    """A writable copy at `clone_path` of the VHD at `path`, sharing its data.

    Without `base_path`, `path` must already be immutable (a snapshot or a base): the clone is
    a child of it. With `base_path`, `path` is a live leaf: as `snapshot(path, base_path,
    clone_path)`, both `path` and `clone_path` become children of the frozen base.
    Returns `clone_path`."""
    if base_path is None:
        return make_child(path, clone_path)
    snapshot(path, base_path, clone_path)
    return clone_path


def chain(path):
    """[path, its parent, ..., the base]: the files whose data `path` reads."""
    out = [path]
    seen = {os.path.realpath(path)}
    current = path
    while True:
        with image.open(current) as img:
            parent = img.parent_path
        if parent is None:
            return out
        real = os.path.realpath(parent)
        if real in seen or len(out) > MAX_DEPTH:
            raise VhdError(f"{path}: parent chain loops at {parent}")
        seen.add(real)
        out.append(parent)
        current = parent


def set_parent(path, new_parent_path):
    """Re-link the differencing VHD at `path` to `new_parent_path` (unique id, timestamp,
    name, locators), e.g. to the file its old parent was coalesced into or moved to.

    The new parent must hold the same data as the old one for the sectors `path` does not."""
    with image.open(new_parent_path) as parent:
        parent_id = parent.footer.unique_id
    name, payloads = create.parent_fields(path, new_parent_path)
    with image.open(path, writable=True) as img:
        meta.store_parent(img, parent_id, create.parent_timestamp(new_parent_path), name,
                          payloads)
        img.flush()


def coalesce(child_path):
    """Copy every sector the differencing VHD at `child_path` holds into its parent.

    Afterwards the parent reads as the child did. The parent must have no other children (they
    would see the change); the caller then deletes the child, or keeps it and re-links the
    child's own children with `set_parent`. The parent grows first if the child is larger.
    Returns the number of bytes copied."""
    copied = 0
    with image.open(child_path) as child:
        if not child.is_differencing:
            raise NotDifferencingError(f"{child_path} is a {child.type_name} disk")
        with image.open(child.parent_path, writable=True) as parent:
            if child.virtual_size > parent.virtual_size:
                parent.resize(child.virtual_size)
            for offset, length in child.extents():
                parent.write(offset, child.read(offset, length))
                copied += length
            parent.flush()
    return copied


def info(path):
    """A dict describing the VHD at `path`: type, virtual_size, physical_size (file bytes),
    allocated (bytes of data blocks), block_size, uuid, and for a differencing disk parent
    (the located path, None if missing or mismatched), parent_uuid, parent_name."""
    with image.open(path) as img:
        out = {"type": img.type_name, "virtual_size": img.virtual_size,
               "physical_size": img.physical_size, "allocated": img.allocated_bytes(),
               "block_size": img.block_size, "uuid": img.uuid, "parent": None,
               "parent_uuid": None, "parent_name": None}
        if img.is_differencing:
            out["parent_uuid"] = img.header.parent_uuid
            out["parent_name"] = img.header.parent_name
            try:
                out["parent"] = img.parent_path
            except (ParentMissingError, ParentMismatchError):
                pass
        return out
