"""`python -m bench.apache_kafka`: see run.py."""

import sys

from bench.apache_kafka.run import main

sys.exit(main())
