"""Service layer: command handlers and the ports they use."""
