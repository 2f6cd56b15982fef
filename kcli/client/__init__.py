"""Client API: producer, consumer and admin over a transport (embedded data dir, or a broker)."""
