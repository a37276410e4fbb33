"""``python -m estilo`` is the ``estilo`` command."""

import sys

from .cli import main

sys.exit(main())
