"""`python -m hostagent` is the `hostagent` command."""

import sys

from .cli import main

sys.exit(main())
