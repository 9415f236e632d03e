"""API CPU per start request: before tracing, traces off, traces on: `-m bench.trace_overhead`."""
