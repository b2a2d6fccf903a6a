"""``python -m benchmarks``: run the suite, print Markdown, optionally write JSON/Markdown."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
