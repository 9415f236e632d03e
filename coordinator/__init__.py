"""Event-sourced sync coordinator: at most one live mail sync per user."""
