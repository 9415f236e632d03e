"""Event consumers: the sync worker with its executors, and the webhook dispatcher."""
