"""`python -m bench.replay`: see run.py."""

import sys

from bench.replay.run import main

sys.exit(main())
