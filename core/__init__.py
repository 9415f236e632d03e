"""The neutral core every package may import: the domain, the event codec, settings, telemetry."""
