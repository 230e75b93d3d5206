"""The master's connection to a member's console relay (hostagent/server/console_pool.py):
the request, which carries the pool secret, goes only to the certificate pinned at join;
the member's answer decides. The KVM test (tests/functional/test_pool_consoles_kvm.py)
drives the whole relay over real TLS."""

from OpenSSL import crypto
from twisted.internet.testing import StringTransport

from hostagent.pool.identity import der, ensure_identity
from hostagent.server.console import Refused
from hostagent.server.console_pool import HEAD_LIMIT, MemberBackend

REQUEST = b"CONNECT /pool/v1/console?uuid=u&protocol=vt100 HTTP/1.1\r\nX-Hostagent-Pool-Secret: s\r\n\r\n"


class PeerTransport(StringTransport):
    """A transport whose peer presented `pem` in its TLS handshake."""

    def __init__(self, pem):
        super().__init__()
        self.peer_cert = crypto.load_certificate(crypto.FILETYPE_PEM, pem.encode())
        self.aborted = False

    def getPeerCertificate(self):
        return self.peer_cert

    def setTcpNoDelay(self, enabled):
        pass

    def abortConnection(self):
        self.aborted = True


def identities(tmp_path):
    member = ensure_identity(str(tmp_path / "member"), "member", ["127.0.0.2"])
    other = ensure_identity(str(tmp_path / "other"), "other", ["127.0.0.2"])
    return member, other


def connected(pinned_pem, presented_pem, name="127.0.0.2"):
    backend = MemberBackend(der(pinned_pem), name, REQUEST)
    outcome = []
    backend.ready.addBoth(outcome.append)
    backend.makeConnection(PeerTransport(presented_pem))
    backend.handshakeCompleted()
    return backend, outcome


def test_the_request_goes_to_the_pinned_member_only(tmp_path):
    (tmp_path / "member").mkdir()
    (tmp_path / "other").mkdir()
    member, other = identities(tmp_path)
    backend, outcome = connected(member.cert_pem, member.cert_pem)
    assert backend.transport.value() == REQUEST and outcome == []
    # another certificate, or the pinned one for an address it does not name: nothing is sent
    for presented, name in ((other.cert_pem, "127.0.0.2"), (member.cert_pem, "127.0.0.9")):
        backend, outcome = connected(member.cert_pem, presented, name)
        assert backend.transport.value() == b"" and backend.transport.aborted
        assert isinstance(outcome[0].value, Refused) and outcome[0].value.code == 503


def test_the_members_answer_decides(tmp_path):
    (tmp_path / "member").mkdir()
    (tmp_path / "other").mkdir()
    member, _ = identities(tmp_path)
    backend, outcome = connected(member.cert_pem, member.cert_pem)
    backend.dataReceived(b"HTTP/1.1 200 OK\r\n")
    assert outcome == []
    backend.dataReceived(b"\r\nRFB 003.008\n")
    assert outcome == [backend] and backend.early == b"RFB 003.008\n"  # kept for the relay
    for head, code in ((b"HTTP/1.1 404 Not Found\r\n\r\n", 404), (b"HTTP/1.1 401 Unauthorized\r\n\r\n", 503),
                       (b"garbage\r\n\r\n", 503), (b"x" * (HEAD_LIMIT + 1), 503)):
        backend, outcome = connected(member.cert_pem, member.cert_pem)
        backend.dataReceived(head)
        assert outcome[0].value.code == code and backend.transport.aborted, head[:40]
