"""`python -m bench.mail_watch`: see run.py."""

import sys

from bench.mail_watch.run import main

sys.exit(main())
