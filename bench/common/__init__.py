"""What the benchmarks share: services and fresh databases, load generation, figures."""
