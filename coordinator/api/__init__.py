"""HTTP interface: thin routes from request schema to command to handler to response."""
