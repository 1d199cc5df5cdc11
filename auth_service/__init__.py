"""FaceAuth's Django app: REST API, WebSocket consumer, sessions, templates, results."""
