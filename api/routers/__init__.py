"""One module per part of the HTTP API; each reads like the endpoints it serves."""
