"""`python -m bench.end_to_end`: see run.py."""

import sys

from bench.end_to_end.run import main

sys.exit(main())
