"""Fake servers for the network services the studio talks to, speaking their real wire formats."""
