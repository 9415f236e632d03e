"""`python -m bench.trace_overhead`: see run.py."""

import sys

from bench.trace_overhead.run import main

sys.exit(main())
