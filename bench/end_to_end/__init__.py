"""The whole pipeline, click to view, and the projector's rate: `python -m bench.end_to_end`."""
