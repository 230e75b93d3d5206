"""Files fetched from http, https and ftp URLs into local files, and http(s) bodies read
as streams (`open_stream`): the only user of urllib.

Blocking; call in a worker thread. A download is written to `<dest>.part` and renamed
into place only once complete: when the server announced a length (Content-Length,
or the ftp size), the bytes received must match it. Every failure is a FetchError
whose message says which URL and what went wrong; nothing partial stays behind.
"""

import contextlib
import http
import http.client
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds without progress before a download is abandoned


class FetchError(Exception):
    """A file could not be fetched; `missing` is true when the server said it has no such file."""

    def __init__(self, message: str, missing: bool = False):
        super().__init__(message)
        self.missing = missing


class FetchCancelled(FetchError):
    """The caller asked the download to stop."""


@dataclass
class Progress:
    """Shared with the thread doing the work: it writes `done` and `total` (bytes, total
    None when unknown); the caller may set `cancel`."""

    done: int = 0
    total: Optional[int] = None
    cancel: bool = False


def fetch(url: str, dest: str, progress: Optional[Progress] = None, timeout: float = TIMEOUT) -> int:
    """Download `url` to `dest`; returns the size. Raises FetchError."""
    progress = progress if progress is not None else Progress()
    part = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            progress.total = (progress.total or 0) + expected if expected is not None else progress.total
            received = 0
            while True:
                if progress.cancel:
                    raise FetchCancelled(f"{url}: cancelled")
                try:
                    chunk = response.read(CHUNK)
                except http.client.IncompleteRead as e:  # closed before the announced length
                    raise FetchError(f"{url}: truncated download, {received + len(e.partial)} of {expected} "
                                     "bytes") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                progress.done += len(chunk)
            if expected is not None and received != expected:
                raise FetchError(f"{url}: truncated download, {received} of {expected} bytes")
            if received == 0:
                raise FetchError(f"{url}: the server sent an empty file")
        os.replace(part, dest)
        return received
    except urllib.error.HTTPError as e:
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}", missing=e.code in (404, 410)) from None
    except urllib.error.URLError as e:
        reason = str(e.reason)  # ftp: "ftp error: error_perm('550 No such file ...')"
        missing = url.startswith("ftp:") and "550" in reason
        raise FetchError(f"{url}: {reason}", missing=missing) from None
    except FetchError:
        raise
    except (OSError, ValueError, socket.timeout, http.client.HTTPException) as e:
        raise FetchError(f"{url}: {type(e).__name__}: {e}") from None
    finally:
        _unlink(part)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class UrlStream:
    """An http(s) response body read as a blocking file-like (`read(n)` returns at most n
    bytes, b"" at the end). A body that stops short of its Content-Length just ends early
    (the reader of the format sees a premature end); a failed read is a FetchError."""

    def __init__(self, url: str, response):
        self.url, self._response = url, response
        self._ended = False
        length = response.headers.get("Content-Length")
        self.length = int(length) if length and length.isdigit() else None
        self.received = 0

    def read(self, n: int = -1) -> bytes:
        if self._ended:
            return b""
        try:
            data = self._response.read(n if n >= 0 else None)
        except http.client.IncompleteRead as e:  # the server closed before the announced length
            self._ended = True
            data = e.partial
        except (OSError, ValueError, http.client.HTTPException) as e:  # TimeoutError is an OSError
            raise FetchError(f"{self.url}: {type(e).__name__}: {e}") from None
        if not data:
            self._ended = True
        self.received += len(data)
        return data

    def close(self) -> None:
        self._ended = True
        with contextlib.suppress(OSError, http.client.HTTPException):
            self._response.close()


def _http_opener() -> urllib.request.OpenerDirector:
    """http and https only, redirects followed among them (never to file: or ftp:)."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPHandler, urllib.request.HTTPSHandler,
                    urllib.request.HTTPRedirectHandler, urllib.request.HTTPErrorProcessor,
                    urllib.request.HTTPDefaultErrorHandler, urllib.request.UnknownHandler):
        opener.add_handler(handler())
    return opener


def _status_line(code: int, reason) -> str:
    """"404 Not Found": the code with its standard phrase (the server's own if none)."""
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} {reason}"


def open_stream(url: str, timeout: float = TIMEOUT) -> UrlStream:
    """GET an http or https URL; its body as a UrlStream. Raises FetchError, whose message
    is the server's status line (e.g. "404 Not Found") when it answered with an error."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        raise FetchError(f"{url}: not an http or https URL")
    try:
        response = _http_opener().open(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise FetchError(_status_line(e.code, e.reason), missing=e.code in (404, 410)) from None
    except urllib.error.URLError as e:
        raise FetchError(f"{url}: {e.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise FetchError(f"{url}: {type(e).__name__}: {e}") from None
    return UrlStream(url, response)


class UrlTree:
    """A repository at an http, https or ftp URL, as the install sources present it:
    `with tree: tree.copy(relative, dest, progress)`."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT):
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def __enter__(self) -> "UrlTree":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def describe(self, relative: str) -> str:
        return f"{self.base}/{relative.lstrip('/')}"

    def copy(self, relative: str, dest: str, progress: Progress) -> int:
        return fetch(self.describe(relative), dest, progress, self.timeout)
