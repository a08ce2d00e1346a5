"""``python -m hepx.cli ...`` (e.g. under ``torchrun``): the ``hepx`` command."""

import sys

from hepx.cli import main

sys.exit(main())
