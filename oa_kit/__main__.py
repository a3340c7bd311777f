"""Allow ``python -m oa_kit``."""

import sys

from oa_kit.cli import main

sys.exit(main())
