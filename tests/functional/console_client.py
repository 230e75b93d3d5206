"""Reaching consoles through the agent's `CONNECT /console` as clients do, for the tests.

`open_console(port, query)` sends the CONNECT and returns the status and the socket (from which,
after a 200, RFB flows). `ConnectRelay` is a local TCP port for clients that want host:port
(vncdotool): each connection to it opens a CONNECT on the agent and is spliced to it.
`find_text(screen, glyphs)` looks for a rendering of text in a captured framebuffer.
"""

import contextlib
import socket
import threading

HEAD_LIMIT = 16384


def open_console(port: int, query: str, host: str = "127.0.0.1", timeout: float = 10.0, headers: str = "",
                 tls: bool = False, unix: str = "", path: str = "/console"):
    """(status, socket, head) of `CONNECT <path>?<query>` on a TCP port (`tls`: through TLS,
    the certificate unchecked) or a Unix socket; the socket is left open."""
    if unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(unix)
    else:
        sock = socket.create_connection((host, port), timeout=timeout)
    if tls:
        import ssl
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=host)
    sock.sendall(f"CONNECT {path}?{query} HTTP/1.0\r\n{headers}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
        chunk = sock.recv(1)  # byte by byte: nothing after the head may be consumed here
        if not chunk:
            break
        head += chunk
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    return status, sock, head


def read_rest(sock, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes (or `timeout` passes without a byte)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    except (TimeoutError, socket.timeout):
        return out + b"<still open>"


def closed_by_peer(sock, timeout: float) -> bool:
    """Whether the peer closes the connection within `timeout` (data read meanwhile is dropped)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (TimeoutError, socket.timeout):
        return False
    except OSError:
        return True


class ConnectRelay:
    """127.0.0.1:<port> whose connections become `CONNECT /console?<query>` on the agent."""

    def __init__(self, agent_port: int, query: str):
        self.agent_port, self.query = agent_port, query
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.statuses = []
        self.upstreams = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            status, upstream, _head = open_console(self.agent_port, self.query)
            self.statuses.append(status)
            if status != 200:
                client.close()
                upstream.close()
                continue
            upstream.settimeout(None)
            self.upstreams.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_splice, args=(a, b), daemon=True).start()

    def close(self):
        self.listener.close()
        for s in self.upstreams:
            with contextlib.suppress(OSError):
                s.close()


def _splice(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def ink(image, background=None):
    """A framebuffer (PIL image) as rows of booleans: True where a pixel differs from the background
    (the colour of the top-left pixel unless given)."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    raw = rgb.tobytes()
    data = [raw[i:i + 3] for i in range(0, len(raw), 3)]
    bg = bytes(background) if background is not None else data[0]
    return [[data[y * width + x] != bg for x in range(width)] for y in range(height)]


def find_text(screen_ink, text_ink, cell=(1, 1)):
    """(x, y) of the first place where `text_ink` (rows of booleans) appears exactly in `screen_ink`,
    trying positions on a grid of `cell` (a character cell); None when it is nowhere."""
    h, w = len(text_ink), len(text_ink[0])
    sh, sw = len(screen_ink), len(screen_ink[0])
    first = text_ink[0]
    for y in range(0, sh - h + 1, cell[1]):
        for x in range(0, sw - w + 1, cell[0]):
            if screen_ink[y][x:x + w] != first:
                continue
            if all(screen_ink[y + dy][x:x + w] == text_ink[dy] for dy in range(1, h)):
                return x, y
    return None
