"""HTTP API (FastAPI): routers per noun, typed dependencies, one error shape."""
