"""Mail: IMAP accounts (passwords sealed at rest), the IMAP connection, the synced messages."""
