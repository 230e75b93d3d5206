"""--libvirt-migrate-uri: where other hosts' libvirtds send VMs migrating to this host."""

import argparse

from hostagent.config import add_serve_options, load, migrate_uri


def parse(*argv):
    p = argparse.ArgumentParser()
    add_serve_options(p)
    return load(p.parse_args(["--state-dir", "/tmp/s", *argv]), environ={})


def test_defaults_follow_the_hypervisor():
    assert migrate_uri(parse("--libvirt-uri", "xen:///system"), "10.0.0.5") == "xen+ssh://10.0.0.5/system"
    assert migrate_uri(parse("--libvirt-uri", "xen:///"), "10.0.0.5") == "xen+ssh://10.0.0.5/system"
    assert migrate_uri(parse("--libvirt-uri", "qemu:///system"), "h2") == "qemu+ssh://h2/system"
    assert migrate_uri(parse(), "10.0.0.5") == ""  # the test driver takes no migrations
    assert migrate_uri(parse("--libvirt-uri", "qemu:///system"), "") == ""  # no address to name


def test_given_or_refused():
    given = "qemu+tls://h2.example/system"
    assert migrate_uri(parse("--libvirt-uri", "qemu:///system", "--libvirt-migrate-uri", given), "h2") == given
    assert migrate_uri(parse("--libvirt-uri", "xen:///system", "--libvirt-migrate-uri", "none"), "h2") == ""


def test_in_the_config_file(tmp_path):
    path = tmp_path / "agent.conf"
    path.write_text("[hostagent]\nlibvirt-migrate-uri = xen+tls://a/system\n")
    p = argparse.ArgumentParser()
    add_serve_options(p)
    cfg = load(p.parse_args(["--config", str(path)]), environ={})
    assert migrate_uri(cfg, "x") == "xen+tls://a/system"
