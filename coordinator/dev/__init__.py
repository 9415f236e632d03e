"""Zero-setup local running: embedded PostgreSQL, the Tansu broker, a process supervisor."""
