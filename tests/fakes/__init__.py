"""Fake servers for the hosted providers: ASGI apps speaking each service's real wire format."""
