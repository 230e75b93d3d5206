"""Reaching the agent: XML-RPC over the local Unix socket, plain HTTP or TLS.

`connect(options)` logs in and returns a `Session` whose `call("VM.get_record",
ref)` prepends the session and unwraps XenAPI's `{Status, Value}` envelope,
raising `Failure` with the ErrorDescription. `ssl` is imported only for TLS.
"""

import contextlib
import http.client
import os
import socket
import xmlrpc.client

from .errors import ConnectError, Failure


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class _Transport(xmlrpc.client.Transport):
    """Keeps one connection (HTTP/1.1 keep-alive) to a Unix socket, TCP port or TLS port."""

    def __init__(self, unix_path=None, tls_context=None, timeout=None):
        super().__init__()
        self._unix_path = unix_path
        self._tls_context = tls_context
        self._timeout = timeout

    def make_connection(self, host):
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        if self._unix_path:
            conn = _UnixConnection(self._unix_path, self._timeout)
        elif self._tls_context is not None:
            chost, self._extra_headers, _ = self.get_host_info(host)
            conn = http.client.HTTPSConnection(chost, timeout=self._timeout, context=self._tls_context)
        else:
            chost, self._extra_headers, _ = self.get_host_info(host)
            conn = http.client.HTTPConnection(chost, timeout=self._timeout)
        self._connection = host, conn
        return conn

    def send_headers(self, connection, headers):
        super().send_headers(connection, headers)
        connection.putheader("originator", "cli")


class Session:
    """A logged-in XenAPI session; `call` and `async_call` return the unwrapped value."""

    def __init__(self, proxy, where, http=None, debug=None):
        self._proxy = proxy
        self.where = where
        self.ref = None
        self.debug = debug  # --debug: a stream that gets one line per call (names, no arguments)
        self.http = http  # () -> a new http.client connection to the agent, for /export and /import

    def _unwrap(self, wire, result):
        if not isinstance(result, dict) or "Status" not in result:
            raise ConnectError(f"{self.where} answered {wire} with something that is not a XenAPI reply")
        if result["Status"] == "Success":
            return result.get("Value")
        description = result.get("ErrorDescription") or ["INTERNAL_ERROR", "no ErrorDescription"]
        raise Failure([str(x) for x in description])

    def raw(self, wire, *args):
        if self.debug is not None:
            self.debug.write(f"xe: calling {wire} on {self.where}\n")
        try:
            result = getattr(self._proxy, wire)(*args)
        except (OSError, http.client.HTTPException) as e:
            raise ConnectError(f"cannot talk to {self.where}: {e}") from None
        except xmlrpc.client.ProtocolError as e:
            raise ConnectError(f"{self.where} answered HTTP {e.errcode} {e.errmsg}") from None
        except xmlrpc.client.Fault as e:
            raise ConnectError(f"{self.where} sent an XML-RPC fault: {e.faultString}") from None
        return self._unwrap(wire, result)

    def call(self, wire, *args):
        return self.raw(wire, self.ref, *args)

    def login(self, username, password):
        self.ref = self.raw("session.login_with_password", username, password, "1.0", "xe")

    def logout(self):
        if self.ref is not None:
            try:
                self.raw("session.logout", self.ref)
            except (Failure, ConnectError):
                pass  # the command's outcome is what matters; a session left behind times out
            self.ref = None


def local_socket(environ=os.environ):
    """The agent's Unix socket on this host: the configured one, else the default places."""
    candidates = []
    conf = environ.get("HOSTAGENT_CONFIG") or "/etc/hostagent/hostagent.conf"
    socket_path, state_dir = _config_keys(conf)
    if socket_path:
        candidates.append(socket_path)
    if state_dir:
        candidates.append(os.path.join(state_dir, "xapi.sock"))
    from hostagent.paths import default_state_dir
    candidates += [os.path.join(default_state_dir(environ=environ), "xapi.sock"), "/var/lib/xcp/xapi"]
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


def _config_keys(path):
    """`unix-socket` and `state-dir` of the agent's INI file, read without configparser."""
    found = {}
    with contextlib.suppress(OSError):  # no such file: nothing set there
        with open(path, encoding="utf-8") as f:
            section = None
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]").strip()
                elif section == "hostagent" and "=" in line and not line.startswith(("#", ";")):
                    key, _, value = line.partition("=")
                    found[key.strip()] = value.strip()
    return found.get("unix-socket"), found.get("state-dir")


def connect(opts) -> Session:
    """Open and log in as `opts` say (see options.Options)."""
    local = opts.server in ("", "127.0.0.1")  # xe's default server: the Unix socket, never TLS
    found = local_socket() if local else None
    path = found if not opts.port_given else None
    if path:
        proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=_Transport(unix_path=path),
                                          allow_none=True)
        session = Session(proxy, f"the agent on {path}", http=lambda: _UnixConnection(path, None))
    else:
        server = opts.server or "127.0.0.1"
        tls = not opts.nossl and not local
        port = opts.port or (443 if tls else (8080 if local else 80))
        context = None
        if tls:
            context = _tls_context(opts)
        host = f"[{server}]" if ":" in server else server
        url = f"{'https' if tls else 'http'}://{host}:{port}/"
        proxy = xmlrpc.client.ServerProxy(url, transport=_Transport(tls_context=context), allow_none=True)
        if tls:
            def opener():
                return http.client.HTTPSConnection(server, port, context=context)
        else:
            def opener():
                return http.client.HTTPConnection(server, port)
        session = Session(proxy, url, http=opener)
    if opts.debug:
        import sys
        session.debug = sys.stderr
    try:
        session.login(opts.username, opts.password)
    except ConnectError as e:
        if local and found is None and not opts.server:
            raise ConnectError(f"{e} (and no agent socket here: is hostagent running? "
                               "-s names another host)") from None
        raise
    return session


def _tls_context(opts):
    import ssl
    context = ssl.create_default_context()
    if opts.no_verify:
        # xe trusts the pool's self-signed certificate unless told to check it
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
