"""The replay tool: per-user audit timelines, projection rebuilds with diff, history checks."""
