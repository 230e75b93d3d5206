"""The host's TLS identity, its persisted role and the pool secret (files in a state dir)."""

import os
import stat

import pytest

from hostagent.pool import client
from hostagent.pool.identity import (IdentityError, der, ensure_identity, fingerprint, load_identity,
                                     names_peer)
from hostagent.pool.role import (MASTER, SLAVE, Role, RoleError, ensure_secret, load_role, new_secret,
                                 save_role, split_address)

UUID = "0b7c1e2a-3d4f-4a5b-8c6d-7e8f9a0b1c2d"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_identity_is_made_once_with_a_private_key(tmp_path):
    ident = ensure_identity(str(tmp_path), UUID, ["127.0.0.7", "0.0.0.0", "dom0.example", ""])
    assert mode(ident.key_path) == 0o600
    again = ensure_identity(str(tmp_path), UUID, ["10.9.9.9"])
    assert again.cert_pem == ident.cert_pem and again.fingerprint == ident.fingerprint
    cert = der(ident.cert_pem)
    assert names_peer(cert, UUID) and names_peer(cert, "127.0.0.7") and names_peer(cert, "dom0.example")
    assert not names_peer(cert, "127.0.0.8") and not names_peer(cert, "10.9.9.9")
    assert not names_peer(cert, "0.0.0.0")


def test_two_hosts_have_different_identities(tmp_path):
    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    a, b = ensure_identity(str(tmp_path / "a"), UUID, []), ensure_identity(str(tmp_path / "b"), UUID, [])
    assert a.fingerprint != b.fingerprint


def test_a_damaged_certificate_is_refused(tmp_path):
    ident = ensure_identity(str(tmp_path), UUID, [])
    with open(ident.cert_path, "w") as f:
        f.write("not a certificate")
    with pytest.raises(IdentityError):
        ensure_identity(str(tmp_path), UUID, [])
    with pytest.raises(IdentityError):
        load_identity(ident.cert_path, ident.key_path)
    with pytest.raises(IdentityError):
        fingerprint("garbage")


def test_pinning_compares_the_whole_certificate_and_the_name(tmp_path):
    a = ensure_identity(str(tmp_path), UUID, ["127.0.0.2"])
    os.makedirs(tmp_path / "other")
    b = ensure_identity(str(tmp_path / "other"), UUID, ["127.0.0.2"])
    presented = der(a.cert_pem)
    client._check_peer("127.0.0.2:1", "127.0.0.2", presented, None)  # first contact: recorded, not checked
    client._check_peer("127.0.0.2:1", "127.0.0.2", presented, a.cert_pem)
    with pytest.raises(client.Unreachable, match="other than the one recorded"):
        client._check_peer("127.0.0.2:1", "127.0.0.2", presented, b.cert_pem)
    with pytest.raises(client.Unreachable, match="does not name"):
        client._check_peer("127.0.0.3:1", "127.0.0.3", presented, a.cert_pem)
    with pytest.raises(client.Unreachable, match="no certificate"):
        client._check_peer("127.0.0.2:1", "127.0.0.2", None, a.cert_pem)


def test_role_defaults_to_master_and_survives_a_round_trip(tmp_path):
    d = str(tmp_path)
    assert load_role(d) == Role(MASTER)
    role = Role(SLAVE, "10.0.0.1:8443", "OpaqueRef:m", UUID, "PEM")
    save_role(d, role)
    assert load_role(d) == role and load_role(d).is_slave
    assert mode(os.path.join(d, "pool-role.json")) == 0o600
    assert not os.path.exists(os.path.join(d, "pool-role.json.tmp"))


@pytest.mark.parametrize("text", ["{", "[]", '{"role": "boss"}', '{"role": "slave"}'])
def test_a_role_file_that_says_nothing_usable_is_refused(tmp_path, text):
    (tmp_path / "pool-role.json").write_text(text)
    with pytest.raises(RoleError):
        load_role(str(tmp_path))


def test_the_secret_is_random_private_and_kept(tmp_path):
    d = str(tmp_path)
    s = ensure_secret(d)
    assert len(s) >= 40 and ensure_secret(d) == s
    assert mode(os.path.join(d, "pool-secret")) == 0o600
    assert new_secret(d) != s and ensure_secret(d) != s


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.1", ("10.0.0.1", 443)), ("10.0.0.1:8443", ("10.0.0.1", 8443)),
    ("master.example", ("master.example", 443)), ("[::1]:9", ("::1", 9)), ("[fe80::1]", ("fe80::1", 443)),
    ("fe80::1", ("fe80::1", 443))])
def test_addresses(text, expected):
    assert split_address(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:x", "host:70000", ":80", "[::1]x"])
def test_bad_addresses(text):
    with pytest.raises(ValueError):
        split_address(text)
