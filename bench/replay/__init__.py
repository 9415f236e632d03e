"""The replay tool over a large history: `python -m bench.replay`."""
