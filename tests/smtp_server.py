"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives, for the e-mail tests."""

from __future__ import annotations

import socket


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
