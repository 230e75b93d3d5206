"""Mounting and unmounting through the runner, for the drivers that mount (ext, nfs)."""

import os

from sm.errors import BackendFailure


def is_mounted(runner, target: str) -> bool:
    """Whether something is mounted exactly on target (findmnt: 0 yes, 1 no)."""
    result = runner.run(["findmnt", "--noheadings", "--mountpoint", target],
                        ok_codes=(0, 1))
    return result.rc == 0


def mount(runner, source: str, target: str, fstype: str, options: str | None,
          error: str, timeout: float | None = None) -> None:
    """mount -t fstype [-o options] -- source target, creating target first (`--`: a source
    or target starting with '-' is never read as an option)."""
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        raise BackendFailure(error, f"cannot create mount point {target}: {exc.strerror}")
    argv = ["mount", "-t", fstype]
    if options:
        argv += ["-o", options]
    runner.run(argv + ["--", source, target], timeout=timeout, error=error)


def umount(runner, target: str, error: str, timeout: float | None = None) -> None:
    """A clean umount, then remove the empty mount point.

    No lazy (-l) fallback: a lazy unmount reports success while a domain can
    still be writing through an open file, so a busy mount stays an error.
    """
    runner.run(["umount", target], timeout=timeout, error=error)
    try:
        os.rmdir(target)
    except OSError:
        pass  # not ours to remove, or not empty: harmless
