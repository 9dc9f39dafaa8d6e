"""``python -m ingest_cli``: the same as the installed ``personalize-ingest`` command."""

from __future__ import annotations

import sys

from ingest_cli.main import main

sys.exit(main())
