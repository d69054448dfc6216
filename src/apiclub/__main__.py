"""`python -m apiclub`: the same as the `apiclub` command."""

import sys

from apiclub.cli import main

sys.exit(main())
