"""Open and click tracking: opaque-token pixel and redirects, buffered events, honest classification."""
