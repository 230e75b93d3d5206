"""--host-console: off unless asked for, yes or no only, and only for an agent running as root."""

import argparse
import os

import pytest

from hostagent.config import ConfigError, add_serve_options, load


def parse(*argv, environ=None):
    p = argparse.ArgumentParser()
    add_serve_options(p)
    return load(p.parse_args(["--state-dir", "/tmp/s", *argv]), environ=environ or {})


def test_off_by_default_whatever_the_hypervisor():
    assert parse().host_console is False
    assert parse("--libvirt-uri", "xen:///system").host_console is False


def test_the_config_file_key(tmp_path, monkeypatch):
    conf = tmp_path / "hostagent.conf"
    conf.write_text("[hostagent]\nhost-console = maybe\n")
    with pytest.raises(ConfigError, match="host-console must be yes or no"):
        parse("--config", str(conf))
    conf.write_text("[hostagent]\nhost-console = no\n")
    assert parse("--config", str(conf)).host_console is False


def test_yes_needs_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match="needs the agent to run as root"):
        parse("--host-console", "yes")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert parse("--host-console", "yes").host_console is True
