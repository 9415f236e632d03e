"""The start command under load against a bare-SQL baseline: `python -m bench.start_commands`."""
