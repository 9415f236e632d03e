"""A full IMAP sync through the worker against a raw imapclient loop: `-m bench.mail_sync`."""
