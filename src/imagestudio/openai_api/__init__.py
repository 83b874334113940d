"""The OpenAI-compatible Images API served at /v1."""
