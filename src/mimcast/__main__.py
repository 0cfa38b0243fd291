"""`python -m mimcast ...` runs the command-line tool."""

import sys

from mimcast.cli import main

sys.exit(main())
