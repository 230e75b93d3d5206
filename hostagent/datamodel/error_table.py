"""XenAPI error codes and the names of their parameters (facts of today's xapi).

The table itself is data, `xapi_errors.json` beside this module: one entry per
code of xapi's published datamodel, its parameter names in order. What xapi
sends but that datamodel leaves out or lists differently (xapi-protocol.md §2)
is kept here, and wins over the table.
"""

import json
from importlib import resources
from typing import Dict, Tuple

OVERRIDES = {
    'SESSION_AUTHENTICATION_FAILED': ('uname', 'reason'),
    'VM_IS_TEMPLATE': ('vm', 'operation'),
    'VM_IS_SNAPSHOT': ('vm', 'operation'),
    'ONLY_REVERT_SNAPSHOT': (),
    'VDI_IO_ERROR': ('msg',),  # xapi's api_errors.ml has it; its published datamodel does not
}


def _load() -> Dict[str, Tuple[str, ...]]:
    text = resources.files(__package__).joinpath("xapi_errors.json").read_text(encoding="utf-8")
    table = {code: tuple(params) for code, params in json.loads(text).items()}
    table.update(OVERRIDES)
    return table


ERRORS = _load()
