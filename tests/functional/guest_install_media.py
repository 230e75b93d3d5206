"""Install media for the eliloader tests: repository trees served by a real HTTP server, ISO
images written with pycdlib, and "installer" and "installed system" initramfs built on the
tests/kvm guest kit.

The installer is the kit's guest with an /init that first reports, on the serial console and
once a second, its role and its /proc/cmdline (so a console that connects late still sees them),
then writes the "installed system" (an ext2 image made by mke2fs -d with a kernel, an initrd
and, per distribution, a GRUB menu) onto /dev/vda, says INSTALLED and, a few seconds later,
reboots as installers do; meanwhile the kit's own init runs. The installed system's initrd is the kit's with role installed-<distro>.
"""

import http.server
import io
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pycdlib

from tests.kvm.cpio import Archive

KIT_INIT = Path(__file__).resolve().parents[1] / "kvm" / "guest_init.sh"
MiB = 1 << 20

WRAPPER = r"""#!/bin/sh
# eliloader test: report role and command line, play the installer, then the kit's /init
/bin/busybox mkdir -p /proc /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
CMDLINE=$(/bin/busybox cat /proc/cmdline)
ROLE=$(/bin/busybox cat /etc/role)
(
  STATUS=
  if [ -f /installed.img ]; then
    while [ ! -b /dev/vda ]; do /bin/busybox sleep 0.2; done
    if /bin/busybox dd if=/installed.img of=/dev/vda bs=1048576 conv=fsync 2>/dev/null; then
      /bin/busybox sync
      STATUS=INSTALLED
    else
      STATUS=INSTALL-FAILED
    fi
  fi
  N=0
  while :; do
    echo "ROLE $ROLE"
    echo "CMDLINE $CMDLINE"
    [ -n "$STATUS" ] && echo "$STATUS"
    N=$((N + 1))
    # as installers do when they are done: reboot (the agent makes that reboot halt the VM)
    [ "$STATUS" = INSTALLED ] && [ $N -ge 3 ] && /bin/busybox reboot -f
    /bin/busybox sleep 1
  done
) >/dev/ttyS0 2>&1 &
exec /bin/busybox sh /kit-init
"""

# Where each distribution's network repository keeps its installer (one candidate of the
# rule table each; Debian's is the second, so the first one's 404 is passed over).
NETWORK_LAYOUT = {
    "debianlike": ("dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/linux",
                   "dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/initrd.gz"),
    "rhlike": ("images/xen/vmlinuz", "images/xen/initrd.img"),
    "sleslike": ("boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen"),
}


def overlay_initrd(kit, role: str, installed: Path = None) -> bytes:
    """The kit's initramfs with a second archive appended (the kernel unpacks both; later
    files win): our /init, the kit's as /kit-init, /etc/role, and the image to install."""
    extra = Archive()
    extra.directory("/etc")
    extra.file("/etc/role", role.encode() + b"\n")
    extra.file("/kit-init", KIT_INIT.read_bytes(), mode=0o755)
    extra.file("/init", WRAPPER.encode(), mode=0o755)
    if installed is not None:
        extra.file("/installed.img", installed.read_bytes())
    return Path(kit.initrd).read_bytes() + extra.gzipped()


def installed_image(kit, distro: str, work: Path) -> Path:
    """An ext2 image of the system the installer "installs" for `distro`."""
    root = work / f"root-{distro}"
    boot = root / "boot"
    boot.mkdir(parents=True)
    initrd = overlay_initrd(kit, f"installed-{distro}")
    if distro == "debianlike":  # GRUB 2, as Debian installs it
        shutil.copyfile(kit.kernel, boot / "vmlinuz-6.1.0-kit-amd64")
        (boot / "initrd.img-6.1.0-kit-amd64").write_bytes(initrd)
        (boot / "grub").mkdir()
        (boot / "grub" / "grub.cfg").write_text(
            "set default=\"0\"\nmenuentry 'Debian GNU/Linux' {\n"
            "    linux /boot/vmlinuz-6.1.0-kit-amd64 root=/dev/vda ro installed=debian\n"
            "    initrd /boot/initrd.img-6.1.0-kit-amd64\n}\n")
    elif distro == "rhlike":  # GRUB legacy, as CentOS 5 installs it
        shutil.copyfile(kit.kernel, boot / "vmlinuz-2.6.18-kit.el5xen")
        (boot / "initrd-2.6.18-kit.el5xen.img").write_bytes(initrd)
        (boot / "grub").mkdir()
        (boot / "grub" / "menu.lst").write_text(
            "default=0\ntimeout=5\ntitle CentOS (2.6.18-kit.el5xen)\n\troot (hd0,0)\n"
            "\tkernel /boot/vmlinuz-2.6.18-kit.el5xen ro root=/dev/vda installed=centos\n"
            "\tinitrd /boot/initrd-2.6.18-kit.el5xen.img\n")
    else:  # SLES 10: YaST writes no menu pygrub can use; the kernel is found by name
        shutil.copyfile(kit.kernel, boot / "vmlinuz-2.6.16-kit-xen")
        os.symlink("vmlinuz-2.6.16-kit-xen", boot / "vmlinuz-xen")
        (boot / "initrd-2.6.16-kit-xen").write_bytes(initrd)
        os.symlink("initrd-2.6.16-kit-xen", boot / "initrd-xen")
    image = work / f"installed-{distro}.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-d", str(root), str(image), "24M"], check=True,
                   capture_output=True)
    return image


def repository_tree(kit, distro: str, top: Path, installed: Path) -> Path:
    """A network repository of `distro`'s layout under `top`, holding the installer."""
    kernel, initrd = NETWORK_LAYOUT[distro]
    for relative, data in ((kernel, Path(kit.kernel).read_bytes()),
                           (initrd, overlay_initrd(kit, f"installer-{distro}", installed))):
        path = top / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return top


def iso_image(files: dict, path: Path) -> Path:
    """An ISO 9660 image with Rock Ridge and Joliet names holding {relative path: bytes}."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3)
    made = set()
    for relative, data in files.items():
        parts = relative.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                iso.add_directory(_iso_name(directory), rr_name=parts[depth - 1], joliet_path="/" + directory)
                made.add(directory)
        iso.add_fp(io.BytesIO(data), len(data), _iso_name(relative) + ";1", rr_name=parts[-1],
                   joliet_path="/" + relative.strip("/"))
    iso.write(str(path))
    iso.close()
    return path


def _iso_name(relative: str) -> str:
    out = []
    for part in relative.strip("/").split("/"):
        name = "".join(c if c.isalnum() else "_" for c in part.upper())
        out.append(name[:30])
    return "/" + "/".join(out)


class RepositoryServer:
    """A real HTTP server (http.server in a thread) over a directory; paths in `lies` are
    answered with a Content-Length larger than the body, then the connection closes; paths in
    `slow` are sent 64 KiB every 50 ms."""

    def __init__(self, root: Path):
        self.root = root
        self.lies = set()
        self.slow = set()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(server.root), **kw)

            def log_message(self, *args):
                """Requests are not logged: the tests' output stays readable."""

            def do_GET(self):
                relative = self.path.split("?")[0].lstrip("/")
                if relative in server.lies and (server.root / relative).is_file():
                    data = (server.root / relative).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data) + 4096))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if relative in server.slow and (server.root / relative).is_file():
                    data = (server.root / relative).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        for at in range(0, len(data), 64 << 10):
                            self.wfile.write(data[at:at + (64 << 10)])
                            self.wfile.flush()
                            time.sleep(0.05)
                    except OSError:  # the client went away (a cancelled download)
                        pass
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "RepositoryServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
