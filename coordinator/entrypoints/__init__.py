"""One module per `syncctl` command: its arguments and a `run` over the composition root."""
