"""Business logic: plain functions the REST views and the WebSocket consumer both call."""
