"""Read models built from the sync event topic: the status view and the task history."""
