"""Real etcd members for the tests: started by the test, stopped after it, nothing assumed
running. Skips with the reason when Debian's etcd-server is not installed."""

import shutil
import socket
import uuid

import pytest

from hostagent.backends.etcd import EtcdClient
from hostagent.backends.etcd_member import EtcdMember, MemberSpec


def need_etcd() -> None:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server; make deps does it)")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Cluster:
    """`hosts` members, one per loopback address, under `base` (a directory of the test's)."""

    def __init__(self, base, hosts=("127.0.0.1",)):
        need_etcd()
        token = uuid.uuid4().hex
        urls = {f"m{i}": (f"http://{h}:{free_port(h)}", f"http://{h}:{free_port(h)}")
                for i, h in enumerate(hosts, 1)}
        peers = {name: peer for name, (_, peer) in urls.items()}
        self.members = [EtcdMember(MemberSpec(name, str(base / name), client, peer, peers, "new", token))
                        for name, (client, peer) in urls.items()]
        self.endpoints = [m.spec.client_url for m in self.members]

    def start(self, timeout: float = 30.0) -> "Cluster":
        try:
            for m in self.members:
                m.start()
            for m in self.members:
                m.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, **kw) -> EtcdClient:
        return EtcdClient(self.endpoints, **kw)

    def stop(self) -> None:
        for m in self.members:
            m.stop()
