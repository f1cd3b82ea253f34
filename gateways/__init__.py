"""The WebSocket edge: parses and validates client messages, calls the core,
encodes core events for clients. Knows nothing of trading rules."""
