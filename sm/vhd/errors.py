"""The exceptions of sm.vhd: everything it raises about an image is a VhdError.

Operating-system failures of the underlying file (a missing image path,
EIO, ENOSPC) stay OSError; every problem with the *contents* of a file
(short reads of metadata, bad cookies, bad checksums, impossible offsets) and
every misuse of the API (out-of-range I/O, shrinking, writing a read-only
image) is a VhdError subclass.
"""


class VhdError(Exception):
    """Root of every sm.vhd error."""


class CorruptError(VhdError):
    """The file is not a well-formed VHD (truncated, impossible fields)."""


class BadCookieError(CorruptError):
    """A footer/header does not start with its cookie ("conectix"/"cxsparse")."""


class ChecksumError(CorruptError):
    """A footer/header checksum does not match its contents."""


class UnsupportedError(VhdError):
    """Well-formed, but uses something this implementation does not handle."""


class NotDifferencingError(VhdError):
    """A parent operation on an image that has no parent."""


class ParentMissingError(VhdError):
    """None of a differencing image's parent locators names an existing file."""


class ParentMismatchError(VhdError):
    """The located parent's unique id is not the one the child records."""


class OutOfRangeError(VhdError):
    """I/O outside the virtual disk, or a size outside what VHD can hold."""


class ReadOnlyError(VhdError):
    """A write to an image opened read-only."""


class ResizeError(VhdError):
    """Shrinking, or growing past what the image can be made to hold."""
