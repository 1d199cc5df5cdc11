"""uvicorn: refuse oversized WebSocket messages with a close frame the client receives.

uvicorn's websockets-sansio protocol answers a message over ``ws_max_size`` by writing the
close frame (1009) and closing the socket at once. The client is usually still sending the
rest of that message, and closing a socket with unread data makes the kernel send a reset,
which destroys the close frame in flight: the client sees 1006, no reason. This protocol
writes the close frame, half-closes (FIN) and keeps reading and discarding what the client
still sends until the client closes too or ``close_timeout`` passes, as RFC 6455 7.1.7
intends. Used by the production worker class (config.workers)."""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class ClosingWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_parser_exception(self) -> None:
        if self.close_sent:
            return  # already failed: the parser discards whatever still arrives
        assert self.conn.close_sent is not None
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": self.conn.close_sent.code,
             "reason": self.conn.close_sent.reason}
        )
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)
