"""python -m hostagent.vncterm: the same as hostagent-vncterm."""

import sys

from .cli import main

sys.exit(main())
