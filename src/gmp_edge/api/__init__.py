"""HTTP API (FastAPI) and the live status page; holds no domain logic."""
