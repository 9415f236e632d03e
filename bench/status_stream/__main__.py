"""`python -m bench.status_stream`: see run.py."""

from bench.status_stream.run import main

main()
