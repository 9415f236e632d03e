"""Event consumers: the sync worker and downstream subscribers: next issue."""
