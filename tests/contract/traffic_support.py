"""ICMP echo between namespaces over a raw socket (root; no ping binary needed)."""

import socket
import struct
import threading

from pyroute2.netns import setns


def _checksum(data: bytes) -> int:
    padded = data + b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def ping(ns, address, tries=3, timeout=0.7) -> bool:
    """Whether an ICMP echo from namespace `ns` to IPv4 `address` is answered."""
    box = {}

    def work():
        setns(ns, flags=0)
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
            sock.settimeout(timeout)
            for seq in range(tries):
                body = struct.pack("!BBHHH", 8, 0, 0, 0x4841, seq) + b"hostagent"
                body = body[:2] + struct.pack("!H", _checksum(body)) + body[4:]
                try:
                    sock.sendto(body, (address, 0))
                    while True:
                        data, (src, _) = sock.recvfrom(1500)
                        icmp = data[(data[0] & 0x0F) * 4:]
                        if src == address and icmp[0] == 0 and icmp[4:8] == struct.pack("!HH", 0x4841, seq):
                            box["ok"] = True
                            return
                except OSError:  # a timeout, or no route while a neighbour cannot be resolved
                    continue
    t = threading.Thread(target=work)
    t.start()
    t.join()
    return box.get("ok", False)


def ping6(ns, address, tries=3, timeout=0.7) -> bool:
    """Whether an ICMPv6 echo from namespace `ns` to IPv6 `address` is answered (the kernel fills
    in an ICMPv6 raw socket's checksum)."""
    box = {}

    def work():
        setns(ns, flags=0)
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
            sock.settimeout(timeout)
            for seq in range(tries):
                body = struct.pack("!BBHHH", 128, 0, 0, 0x4841, seq) + b"hostagent"
                try:
                    sock.sendto(body, (address, 0, 0, 0))
                    while True:
                        data, src = sock.recvfrom(1500)
                        if src[0] == address and data[0] == 129 and data[4:8] == struct.pack("!HH", 0x4841, seq):
                            box["ok"] = True
                            return
                except OSError:
                    continue
    t = threading.Thread(target=work)
    t.start()
    t.join()
    return box.get("ok", False)
