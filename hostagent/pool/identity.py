"""This host's TLS identity: a key and a self-signed certificate kept in the state dir.

Made on the first start (an EC P-256 key, 0600, and a ten-year certificate naming the
host uuid and its addresses in the subject alternative names); pool members pin each
other's certificate at join, so it is never renewed behind their backs. This module is
the adapter of `cryptography` and `service_identity`: everything else sees PEM text.
"""

import contextlib
import datetime
import hashlib
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from typing import Iterable, List

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import service_identity
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address

CERT_FILE = "pool-cert.pem"
KEY_FILE = "pool-key.pem"
VALIDITY = datetime.timedelta(days=3650)


class IdentityError(Exception):
    """The certificate or key cannot be made, read, or does not name what it should."""


@dataclass(frozen=True)
class Identity:
    cert_path: str
    key_path: str
    cert_pem: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_pem)


def ensure_identity(state_dir: str, host_uuid: str, addresses: Iterable[str]) -> Identity:
    """The state dir's identity, made on the first call."""
    cert_path, key_path = os.path.join(state_dir, CERT_FILE), os.path.join(state_dir, KEY_FILE)
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        _make(cert_path, key_path, host_uuid, addresses)
    try:
        with open(cert_path) as f:
            pem = f.read()
        x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (OSError, ValueError) as e:
        raise IdentityError(f"{cert_path}: {e}; remove it and {KEY_FILE} to make a new identity") from e
    return Identity(cert_path, key_path, pem)


def load_identity(cert_path: str, key_path: str) -> Identity:
    """An identity from given files (`--cert`/`--key`): members pin this certificate instead."""
    try:
        with open(cert_path) as f:
            pem = f.read()
        der(pem)
    except (OSError, IdentityError) as e:
        raise IdentityError(f"{cert_path}: {e}") from e
    return Identity(cert_path, key_path, pem)


def _names(host_uuid: str, addresses: Iterable[str]) -> List[x509.GeneralName]:
    names: List[x509.GeneralName] = [x509.DNSName(host_uuid)]
    seen = set()
    for a in addresses:
        a = (a or "").strip().strip("[]")
        if not a or a in seen or a in ("0.0.0.0", "::"):
            continue
        seen.add(a)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(a)))
        except ValueError:
            names.append(x509.DNSName(a))
    return names


def _make(cert_path: str, key_path: str, host_uuid: str, addresses: Iterable[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_uuid)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(_names(host_uuid, addresses)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    write_private(key_path, key_pem)  # the key first: a certificate alone is never taken as whole
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write a file whole or not at all (temporary file, fsync, rename, fsync of the dir)."""
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(path) or ".")  # concurrent writers each have their own
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def der(pem: str) -> bytes:
    """The DER bytes of a PEM certificate; IdentityError if it is none."""
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(serialization.Encoding.DER)
    except (ValueError, UnicodeEncodeError) as e:
        raise IdentityError(f"not a PEM certificate: {e}") from e


def pem_of(der_bytes: bytes) -> str:
    return x509.load_der_x509_certificate(der_bytes).public_bytes(serialization.Encoding.PEM).decode("ascii")


def fingerprint(pem: str) -> str:
    """sha256 of the certificate, hex, as `openssl x509 -fingerprint -sha256` shows it (no colons)."""
    return hashlib.sha256(der(pem)).hexdigest()


def names_peer(der_bytes: bytes, host: str) -> bool:
    """Whether the certificate names `host` (an IP address or a DNS name) in its SANs."""
    cert = x509.load_der_x509_certificate(der_bytes)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        check = verify_certificate_hostname
    else:
        check = verify_certificate_ip_address
    try:
        check(cert, host)
    except (service_identity.VerificationError, service_identity.CertificateError):
        return False
    return True
