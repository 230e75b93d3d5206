"""Fixtures of the sm contract tests: nbdkit (the datapath's NBD server) installed, and a
state dir short enough for NBD sockets."""

import os
import shutil
import subprocess
import tempfile

import pytest

# nbdkit and its Python plugin serve VHD chains; nbdinfo (libnbd-bin) reports what they offer.
PACKAGES = ["nbdkit", "nbdkit-plugin-python", "libnbd-bin"]


def _have_nbdkit() -> bool:
    if not (shutil.which("nbdkit") and shutil.which("nbdinfo")):
        return False
    return subprocess.run(["nbdkit", "python", "--version"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def nbdkit():
    """Makes sure nbdkit with its Python plugin (and nbdinfo) is installed: as root it
    installs the Debian packages when missing, else the test is skipped, saying why."""
    if not _have_nbdkit():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip(f"nbdkit missing; install {' '.join(PACKAGES)} as root")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        for argv in (install, ["apt-get", "update", "-q"], install):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
            if argv is install and done.returncode == 0:
                break
        if not _have_nbdkit():
            pytest.skip(f"could not install {' '.join(PACKAGES)}: {done.stderr.strip()[-500:]}")
    if not shutil.which("qemu-io"):
        pytest.skip("qemu-io (qemu-utils) is the independent NBD client")
    return shutil.which("nbdkit")


@pytest.fixture
def state():
    """A short state dir: a socket path must fit in 107 bytes, whatever the test's name.
    Every server still running at the end is stopped."""
    from sm.datapath.records import Records
    from sm.datapath.server import NbdServers

    path = tempfile.mkdtemp(prefix="dp-", dir="/tmp")
    yield path
    servers = NbdServers(os.path.join(path, "datapath"))
    for record in Records(path).all():
        servers.stop(record.ident)
    shutil.rmtree(path, ignore_errors=True)
