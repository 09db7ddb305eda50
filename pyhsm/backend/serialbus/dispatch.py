"""Request tables: how each serial-bus protocol finds the answer to a request.

Every protocol declares one table ``{command code: Route}``. A route names the record the request's
body decodes to and the handler that answers it; the protocol decodes its own header, looks the code
up, and turns a missing route or a ``RecordError`` into its own error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Protocol, TypeVar

from pyhsm.protocol.serialbus.record import Record


class RequestHeader(Protocol):
    """A decoded request header; ``rest`` is the body after it."""

    @property
    def rest(self) -> bytes: ...


C = TypeVar("C")                      # the responder whose method the handler is
H = TypeVar("H", bound=RequestHeader)        # the protocol's header record


@dataclass(frozen=True)
class Route(Generic[C, H]):
    """One request: its body decodes to ``body``; ``handler(responder, header, body record)`` returns the
    response data."""

    body: type[Record]
    handler: Callable[[C, H, Any], bytes]

    def answer(self, responder: C, header: H) -> bytes:
        """The handler's answer to ``header`` and its body; ``RecordError`` if the body does not fit."""
        return self.handler(responder, header, self.body.decode(header.rest))
