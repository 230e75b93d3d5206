"""--tls-listen without --cert/--key (the host's own identity) and the pool's timings."""

import argparse

import pytest

from hostagent.config import ConfigError, add_serve_options, load


def parse(*argv):
    p = argparse.ArgumentParser()
    add_serve_options(p)
    return load(p.parse_args(["--state-dir", "/tmp/s", *argv]), environ={})


def test_tls_listen_needs_no_certificate_files():
    cfg = parse("--tls-listen", "127.0.0.2:0")
    assert cfg.tls_listen == ["127.0.0.2:0"] and cfg.cert is None and cfg.key is None


def test_cert_and_key_go_together():
    assert parse("--tls-listen", "0.0.0.0:443", "--cert", "c.pem", "--key", "k.pem").cert == "c.pem"
    with pytest.raises(ConfigError, match="go together"):
        parse("--tls-listen", "0.0.0.0:443", "--cert", "c.pem")


def test_pool_timings():
    cfg = parse()
    assert (cfg.pool_heartbeat, cfg.pool_host_timeout) == (10.0, 60.0)
    cfg = parse("--pool-heartbeat", "0.5", "--pool-host-timeout", "3")
    assert (cfg.pool_heartbeat, cfg.pool_host_timeout) == (0.5, 3.0)
    for bad in (["--pool-heartbeat", "0"], ["--pool-heartbeat", "5", "--pool-host-timeout", "5"]):
        with pytest.raises(ConfigError):
            parse(*bad)
