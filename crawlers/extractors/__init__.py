"""Pure functions from a fetched page to raw item payloads: no requests, no storage."""
