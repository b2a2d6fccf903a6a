"""``python -m conserve_verified`` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
