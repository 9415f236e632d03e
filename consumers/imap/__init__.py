"""The `imap` executor: syncs a user's IMAP folders into PostgreSQL, resumable by checkpoint."""
