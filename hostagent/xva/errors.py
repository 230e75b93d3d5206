"""The one failure of the XVA modules: a XenAPI error code and its parameters."""


class XvaError(Exception):
    """An archive that cannot be read (or written): `code` is the XenAPI error code
    (IMPORT_ERROR_PREMATURE_EOF, IMPORT_ERROR_SOME_CHECKSUMS_FAILED, ...), `params` its
    parameters, as the error table names them."""

    def __init__(self, code: str, *params: str):
        super().__init__(code, *params)
        self.code = code
        self.params = tuple(str(p) for p in params)
