"""The bottom kit: errors, pagination, HTTP helpers. It imports no domain package."""
