"""The Transport protocol (pyhsm/client/transport.py) over the serial-bus mailbox: management DDI only.

Each ``submit`` sends the MBOR request as a vendor-defined MCTP message (vendor 0x1414, command 0xC0)
through a ``Mailbox`` (``smbus2.SMBus`` on ``/dev/i2c-N`` in a guest; the qtest ICH9 host on the
host) and returns the MBOR response with CQE status 0. The serial endpoint runs GetApiRev,
GetDeviceInfo, GetCertChainInfo and GetCertificate; anything else comes back as a DDI error
(UnsupportedCmd), and session operations cannot be expressed (``OSError``).
"""

from __future__ import annotations

from pyhsm.client.serialbus.mailbox import Mailbox, MailboxError, SmbusLike
from pyhsm.client.serialbus.requester import MctpRequester, ProtocolError
from pyhsm.client.transport import MAX_BUFFER, Completion
from pyhsm.protocol.link import SessionFlags, SessionOp
from pyhsm.protocol.serialbus.vdm import Command, request

_ANSWER_HEADER = 5   # type, vendor id (2), rq/crypt, command


def open_i2c(bus_number: int) -> SmbusLike:
    """``smbus2.SMBus`` on ``/dev/i2c-<bus_number>`` (imported here: only guests and tools need it)."""
    from smbus2 import SMBus
    return SMBus(bus_number)


class I2cTransport:
    """Management DDI commands through a serial ``Mailbox``."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mctp = MctpRequester(mailbox)

    def submit(self, request_bytes: bytes, flags: SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        """Send one MBOR request. Raises ``OSError`` if the mailbox fails or a session is involved."""
        if opc != 0 or flags.op != SessionOp.NONE:
            raise OSError("the serial mailbox carries no session commands")
        try:
            answer = self.mctp.request(request(Command.MANAGEMENT_DDI, request_bytes))
        except (MailboxError, ProtocolError, TimeoutError) as exc:
            raise OSError(f"azihsm serial mailbox: {exc}") from exc
        if len(answer) < _ANSWER_HEADER or answer[4] != Command.MANAGEMENT_DDI:
            raise OSError(f"azihsm serial mailbox: unexpected answer {answer[:8].hex()}")
        return Completion(0, flags, 0, 0, answer[_ANSWER_HEADER:])

    def close(self) -> None:
        """Nothing to release: the mailbox holds no sessions."""
