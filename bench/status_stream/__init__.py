"""What open status streams cost, and commit-to-stream delivery: `python -m bench.status_stream`."""
