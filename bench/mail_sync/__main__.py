"""`python -m bench.mail_sync`: see run.py."""

import sys

from bench.mail_sync.run import main

sys.exit(main())
