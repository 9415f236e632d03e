"""New mail to visible and the cost of watching, one `syncctl watch`: `-m bench.mail_watch`."""
