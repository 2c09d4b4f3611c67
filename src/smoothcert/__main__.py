"""``python -m smoothcert`` (and ``torchrun ... -m smoothcert``): the command line."""

import sys

from .cli import main

sys.exit(main())
