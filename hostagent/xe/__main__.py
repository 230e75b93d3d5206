"""`python -m hostagent.xe`: the same as the `xe` command."""

from .main import entry

entry()
