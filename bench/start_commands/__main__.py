"""`python -m bench.start_commands`: see run.py."""

import sys

from bench.start_commands.run import main

sys.exit(main())
