"""The scope a worker's report token carries: the API requires it on the report routes and
refuses it on every user route; the worker puts it in the tokens it signs."""

REPORT_SCOPE = "sync:report"
