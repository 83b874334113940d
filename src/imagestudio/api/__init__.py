"""The HTTP API: error shape, dependencies, the /api/v1 router."""
