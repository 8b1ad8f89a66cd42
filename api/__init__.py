"""The HTTP API and the web page that serves search to people."""
