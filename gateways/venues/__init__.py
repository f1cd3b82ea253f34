"""Live venues through ccxt: their config, credentials, the connection that checks
them, the broker that trades on them and their market data feed (docs/venues.md)."""
