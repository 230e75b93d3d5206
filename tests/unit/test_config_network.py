"""--manage-network and --netns: defaults follow the hypervisor, the config file can say either."""

import argparse

import pytest

from hostagent.config import ConfigError, add_serve_options, load


def parse(*argv, environ=None):
    p = argparse.ArgumentParser()
    add_serve_options(p)
    return load(p.parse_args(["--state-dir", "/tmp/s", *argv]), environ=environ or {})


@pytest.mark.parametrize("uri, managed", [
    ("test:///default", False), ("xen:///system", True), ("qemu:///system", True)])
def test_the_default_follows_the_hypervisor(uri, managed):
    assert parse("--libvirt-uri", uri).manage_network is managed


def test_the_command_line_overrides_the_default():
    assert parse("--manage-network").manage_network is True
    assert parse("--libvirt-uri", "xen:///system", "--no-manage-network").manage_network is False


def test_netns_needs_manage_network():
    assert parse("--manage-network", "--netns", "lab").netns == "lab"
    with pytest.raises(ConfigError):
        parse("--netns", "lab")


def test_the_config_file_key(tmp_path):
    ini = tmp_path / "h.conf"
    ini.write_text("[hostagent]\nmanage-network = yes\nnetns = lab\n")
    cfg = parse("--config", str(ini))
    assert cfg.manage_network is True and cfg.netns == "lab"
    ini.write_text("[hostagent]\nmanage-network = perhaps\n")
    with pytest.raises(ConfigError):
        parse("--config", str(ini))
