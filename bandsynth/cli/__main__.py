"""``python -m bandsynth.cli`` runs the ``bandsynth`` command."""

import sys

from . import main

sys.exit(main())
