"""Reading the sync-event topic: the consumer-group source and the record decoder."""
