"""What the VHD drivers parsed of each file, kept while the file stays the same.

Listing a VHD SR needs every file's virtual size and parent (``vhdfile.facts``),
and reading them opens the file, its footer, header and whole block allocation
table, and the parent it names: about a tenth of a millisecond a file, paid
several times per call. A driver keeps one ``FactsCache`` per SR and asks it
instead; a cached answer costs one ``fstat`` of the file.

A file counts as unchanged while its identity is: ``(st_dev, st_ino, st_size,
st_mtime_ns, st_ctime_ns)``, which any rewrite, rename, chmod or replacement by
another process changes. The facts come from the file alone: its virtual size, and
the file name of its parent, which is the same whether or not the parent is there
(the name recorded in the header, or the name of the file its locators find, which
name the same file). The identity is read through an
open file descriptor, not a bare ``stat``: NFS revalidates a file when it is opened
(close-to-open), where ``stat`` may answer from its attribute cache for up to a
minute, so another host's change is seen as soon as a parse would have seen it.
The driver also forgets every file it changes itself (``changing``), so a change
that lands in the same timestamp tick as an earlier read is never missed, and an
answer parsed while such a change ran is not kept. Safe for the threads of one SR:
shared operations run side by side.
"""

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterable, NamedTuple

from sm.drivers import vhdfile

Identity = tuple


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def fresh_stat(path: str) -> os.stat_result:
    """os.stat of path as of now, also on NFS (through an open descriptor)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


class _Entry(NamedTuple):
    key: Identity
    facts: vhdfile.VhdFacts


class FactsCache:
    """``facts(path, st)``: ``vhdfile.facts_or_broken(path)``, parsed once per identity."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._epoch = 0  # bumped by every forget: a parse that overlapped one is not kept
        self.parses = 0  # files parsed so far (for tests and benchmarks)

    def facts(self, path: str, st: os.stat_result) -> vhdfile.VhdFacts:
        """The facts of the file at path, whose ``fresh_stat`` (taken just now) is st.
        FileNotFoundError if it went meanwhile."""
        key = identity(st)
        with self._lock:
            entry = self._entries.get(path)
            epoch = self._epoch
        if entry is not None and entry.key == key:
            return entry.facts
        facts = vhdfile.facts_or_broken(path)
        with self._lock:
            self.parses += 1
            if self._epoch == epoch:
                self._entries[path] = _Entry(key, facts)
        return facts

    def listing(self, directory: str, wanted: Callable[[str], bool]
                ) -> dict[str, tuple[vhdfile.VhdFacts, os.stat_result]]:
        """{name: (facts, stat)} of the files in directory whose names are wanted: one
        fresh_stat per file, a parse only for files new or changed since the last
        call. Entries of files no longer there are dropped."""
        out, paths, facts = {}, [], self.facts
        with os.scandir(directory) as entries:
            for entry in entries:
                if not wanted(entry.name):
                    continue
                try:
                    st = fresh_stat(entry.path)
                    out[entry.name] = (facts(entry.path, st), st)
                except FileNotFoundError:
                    continue  # removed behind our back between listing and reading
                paths.append(entry.path)
        self.keep_only(paths)
        return out

    def forget(self, *paths: str) -> None:
        """The driver is changing (or has changed) these files."""
        with self._lock:
            self._epoch += 1
            for path in paths:
                self._entries.pop(path, None)

    @contextmanager
    def changing(self, *paths: str):
        """Around the driver's own change of these files: forgotten before and after,
        so no reader keeps what it parsed while the change ran."""
        self.forget(*paths)
        try:
            yield
        finally:
            self.forget(*paths)

    def keep_only(self, paths: Iterable[str]) -> None:
        """Drop entries of files no longer listed (after a full listing)."""
        listed = set(paths)
        with self._lock:
            for path in [p for p in self._entries if p not in listed]:
                del self._entries[path]

    def __len__(self):
        return len(self._entries)

