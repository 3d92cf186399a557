"""Receiving one Pyro5 message under lonja's size limit, counted after decompression.

Pyro5 checks a message's size as sent (compressed) and then decompresses it without bound, so a 50 MB
argument compressed to 50 KB passes a 100 KB limit. Here the declared size is checked first, and the
payload is decompressed with a bound. A message over the limit is read to its end (so the connection
stays usable) and reported as `TooLarge`, which servers answer with "message too large (N > M)".
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

from Pyro5 import errors, protocol

DRAIN_LIMIT = 256 * 1024 * 1024
"""Largest oversized payload that is read and discarded; past this the connection is closed instead."""
_CHUNK = 1024 * 1024


class TooLarge(Exception):
    """A message over the limit; carries what a reply needs (its seq and serializer)."""

    def __init__(self, message: Any, size: int, limit: int, after_decompression: bool) -> None:
        shown = f"> {size}" if after_decompression else str(size)
        where = " after decompression" if after_decompression else ""
        super().__init__(f"message too large ({shown} > {limit} bytes{where}): "
                         f"send less per call, or raise limits.max_message_size on the server")
        self.seq = message.seq
        self.serializer_id = message.serializer_id


def receive(connection: Any, accepted: Sequence[int], limit: int) -> protocol.ReceivingMessage:
    """Read one message from `connection`; TooLarge if it exceeds `limit` bytes, before or after unzipping."""
    header = connection.recv(6)
    protocol.ReceivingMessage.validate(header)
    header += connection.recv(protocol._header_size - 6)
    message = protocol.ReceivingMessage(header)
    if accepted and message.type not in accepted:
        error = errors.ProtocolError(f"invalid msg type {message.type} received")
        error.pyroMsg = message
        raise error
    declared = message.data_size + message.annotations_size
    if declared > limit:
        if declared > DRAIN_LIMIT:
            raise errors.ConnectionClosedError(f"message of {declared} bytes refused, connection closed")
        _drain(connection, declared)
        raise TooLarge(message, declared, limit, after_decompression=False)
    payload = connection.recv(declared)
    compressed = message.flags & protocol.FLAGS_COMPRESSED
    message.flags &= ~protocol.FLAGS_COMPRESSED  # Pyro5 would unzip without bound: we do it below
    message.add_payload(payload)
    if compressed:
        inflater = zlib.decompressobj()
        data = inflater.decompress(message.data, limit + 1)
        if len(data) > limit or inflater.unconsumed_tail:
            raise TooLarge(message, limit, limit, after_decompression=True)
        message.data = data
        message.data_size = len(data)
    return message


def _drain(connection: Any, size: int) -> None:
    while size > 0:
        size -= len(connection.recv(min(_CHUNK, size)))
