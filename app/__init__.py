"""The Starlette app: accepts code over HTTP/WebSocket, queues it, relays its output."""
