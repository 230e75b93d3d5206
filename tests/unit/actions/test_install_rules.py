"""eliloader's rule table and the installer command lines built from it (actions/install_rules.py),
and the GRUB menus the KVM stand-in for pygrub reads (actions/grub_menu.py)."""

import pytest

from hostagent.actions import grub_menu
from hostagent.actions import install_rules as rules
from hostagent.actions.install_rules import InstallError

RULES = rules.load()


def keys(distro, repo, **more):
    oc = {"install-distro": distro, "install-repository": repo, "install-round": "1"}
    oc.update(more)
    return oc


def test_the_table_has_the_seeds_families_and_their_rounds():
    assert set(RULES) == {"debianlike", "rhlike", "sleslike"}
    assert {name: rule["rounds"] for name, rule in RULES.items()} == {"debianlike": 1, "rhlike": 1, "sleslike": 2}


def test_debian_netboot_paths_and_mirror_arguments():
    plan = rules.plan(RULES, keys("debianlike", "http://mirror.example:8080/debian/", **{"debian-release": "bookworm"}),
                      "console=hvc0", "x86_64")
    assert plan.step == rules.INSTALL and plan.last
    assert plan.candidates[0] == ("dists/bookworm/main/installer-amd64/current/images/netboot/xen/vmlinuz",
                                  "dists/bookworm/main/installer-amd64/current/images/netboot/xen/initrd.gz")
    assert ("dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/linux",
            "dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/initrd.gz") \
        in plan.candidates
    assert plan.cmdline.split() == [
        "console=hvc0", "mirror/protocol=http", "mirror/country=manual", "mirror/http/hostname=mirror.example:8080",
        "mirror/http/directory=/debian", "mirror/http/proxy=", "mirror/suite=bookworm"]
    assert plan.repository.join(plan.candidates[0][0]).startswith("http://mirror.example:8080/debian/dists/")


def test_debian_needs_its_release_and_has_no_vnc():
    with pytest.raises(InstallError, match="debian-release"):
        rules.plan(RULES, keys("debianlike", "http://h/debian"), "", "x86_64")
    plan = rules.plan(RULES, keys("debianlike", "ftp://h/debian", **{"debian-release": "etch", "install-vnc": "true",
                                                                      "install-vncpasswd": "secret"}), "", "x86_64")
    assert "vnc" not in plan.cmdline and "mirror/ftp/hostname=h" in plan.cmdline
    with pytest.raises(InstallError, match="cannot install from nfs"):
        rules.plan(RULES, keys("debianlike", "nfs://h/debian", **{"debian-release": "etch"}), "", "x86_64")


def test_red_hat_method_and_vnc_arguments():
    plan = rules.plan(RULES, keys("rhlike", "http://h/centos/5/os/x86_64", **{"install-vnc": "true",
                                                                                "install-vncpasswd": "s3cret"}),
                      "", "x86_64")
    assert plan.candidates[0] == ("images/xen/vmlinuz", "images/xen/initrd.img")
    assert ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img") in plan.candidates
    assert plan.cmdline == "method=http://h/centos/5/os/x86_64 vnc vncpassword=s3cret"
    nfs = rules.plan(RULES, keys("rhlike", "nfs:server:/export/rhel5"), "", "x86_64")
    assert nfs.repository == rules.Repository("nfs", "server", "/export/rhel5", "nfs:server:/export/rhel5")
    assert nfs.cmdline == "method=nfs:server:/export/rhel5"
    assert rules.plan(RULES, keys("rhlike", "cdrom"), "", "x86_64").cmdline == "method=cdrom"
    no_vnc = rules.plan(RULES, keys("rhlike", "http://h/x", **{"install-vnc": "false"}), "", "x86_64")
    assert "vnc" not in no_vnc.cmdline


def test_sles_paths_arguments_and_second_round():
    plan = rules.plan(RULES, keys("sleslike", "nfs://server/sles10", **{"install-vnc": "1"}), "", "x86_64")
    assert plan.candidates[0] == ("boot/x86_64/vmlinuz-xen", "boot/x86_64/initrd-xen")
    assert plan.cmdline == "install=nfs://server/sles10 vnc=1" and not plan.last
    second = rules.plan(RULES, keys("sleslike", "nfs://server/sles10", **{"install-round": "2"}), "", "x86_64")
    assert second.step == rules.FIND_KERNEL and second.last
    assert second.installed[0] == ("/boot/vmlinuz-xen", "/boot/initrd-xen")
    done = rules.plan(RULES, keys("sleslike", "nfs://server/sles10", **{"install-round": "3"}), "", "x86_64")
    assert done.step == rules.DONE


@pytest.mark.parametrize("repo, message", [
    ("", "expected cdrom"), ("gopher://h/x", "expected cdrom"), ("http:///nohost", "names no server"),
    ("http://h/a path", "no spaces"), ("file:///srv/repo", "expected cdrom")])
def test_bad_repositories(repo, message):
    with pytest.raises(InstallError, match=message):
        rules.plan(RULES, keys("rhlike", repo), "", "x86_64")


def test_bad_keys():
    with pytest.raises(InstallError, match="install-distro 'gentoo'"):
        rules.plan(RULES, keys("gentoo", "http://h/"), "", "x86_64")
    with pytest.raises(InstallError, match="install-round 'two'"):
        rules.plan(RULES, keys("rhlike", "http://h/", **{"install-round": "two"}), "", "x86_64")
    with pytest.raises(InstallError, match="install-methods"):
        rules.plan(RULES, keys("rhlike", "ftp://h/", **{"install-methods": "cdrom,http"}), "", "x86_64")
    with pytest.raises(InstallError, match="no installer for sparc64"):
        rules.plan(RULES, keys("rhlike", "http://h/"), "", "sparc64")
    with pytest.raises(InstallError, match="spaces"):
        rules.plan(RULES, keys("rhlike", "http://h/", **{"install-vnc": "true", "install-vncpasswd": "a b"}),
                   "", "x86_64")


def test_bootloader_args_round_trip():
    text = rules.bootloader_args("/boot/vmlinuz-xen", "/boot/initrd-xen")
    assert text == "--kernel=/boot/vmlinuz-xen --ramdisk=/boot/initrd-xen"
    assert rules.parse_bootloader_args(text) == {"kernel": "/boot/vmlinuz-xen", "ramdisk": "/boot/initrd-xen"}
    assert rules.parse_bootloader_args("--args='root=/dev/xvda1 ro'") == {"args": "root=/dev/xvda1 ro"}
    with pytest.raises(InstallError, match="--bogus"):
        rules.parse_bootloader_args("--bogus=1")


GRUB2 = """
set default="1"
menuentry 'Debian GNU/Linux' --class debian {
    insmod ext2
    linux /boot/vmlinuz-6.1.0-9-amd64 root=UUID=1234 ro quiet
    initrd /boot/initrd.img-6.1.0-9-amd64
}
menuentry 'Debian GNU/Linux, recovery' {
    linux (hd0,msdos1)/boot/vmlinuz-6.1.0-9-amd64 root=UUID=1234 ro single
    initrd /boot/initrd.img-6.1.0-9-amd64
}
"""

MENU_LST = """
default 0
timeout 5
title SUSE Linux Enterprise Server 10 SP1
    root (hd0,0)
    kernel (hd0,0)/boot/vmlinuz-xen root=/dev/xvda1 console=xvc0
    initrd /boot/initrd-xen
title Failsafe
    kernel /boot/vmlinuz root=/dev/xvda1 single
"""


def test_grub_menus():
    entry = grub_menu.parse("/boot/grub/grub.cfg", GRUB2)
    assert entry == grub_menu.Entry("Debian GNU/Linux, recovery", "/boot/vmlinuz-6.1.0-9-amd64",
                                    "/boot/initrd.img-6.1.0-9-amd64", "root=UUID=1234 ro single")
    legacy = grub_menu.parse("/boot/grub/menu.lst", MENU_LST)
    assert legacy == grub_menu.Entry("SUSE Linux Enterprise Server 10 SP1", "/boot/vmlinuz-xen", "/boot/initrd-xen",
                                     "root=/dev/xvda1 console=xvc0")
    assert grub_menu.parse("/boot/grub/grub.cfg", "set timeout=5\n") is None
    out_of_range = grub_menu.parse("/boot/grub/menu.lst", "default 7\n" + MENU_LST.replace("default 0", ""))
    assert out_of_range.title == "SUSE Linux Enterprise Server 10 SP1"
