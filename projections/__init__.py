"""Read models built from the sync event topic (status view, task history): next issue."""
