"""The embedding store: one folder per encoder, written clip by clip by the extraction loop."""
