"""``python -m smoothcert`` and ``torchrun ... -m smoothcert -- ...``: the command line.

torchrun needs ``--`` before smoothcert's arguments (it would take ``--max`` for its own
``--max-restarts``); Python versions differ in whether the ``--`` reaches us, so a leading one is dropped.
"""

import sys

from .cli import main

argv = sys.argv[1:]
sys.exit(main(argv[1:] if argv[:1] == ["--"] else argv))
