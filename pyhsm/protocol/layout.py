"""Register offsets and queue-entry formats of the azihsm function (docs/device.md, "PCI function", "Queue entry formats" and "Admin commands").

Each entry format is declared once as a struct layout plus a dataclass of its fields.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import Field, astuple, dataclass
from typing import Any, ClassVar

VENDOR_ID, DEVICE_ID, CLASS_CODE = 0x1414, 0xC003, 0x108000
BAR_SIZE = 4096
MSIX_VECTORS = 32

# BAR0 controller registers
CAP, VS, CC, CSTS, NSSR, AQA, ASQ, ACQ = 0x00, 0x08, 0x14, 0x1C, 0x20, 0x24, 0x28, 0x30
NSSR_MAGIC = 0x4E564D65  # "NVMe"
CC_EN = 1
CC_ENTRY_SIZES = 0x6746_0000  # CP SQE 2^6, CP CQE 2^4, FP SQE 2^7, FP CQE 2^6
CSTS_RDY, CSTS_CFS = 1 << 0, 1 << 1
ADMIN_QUEUE_ENTRIES = 16
AQA_ADMIN = (ADMIN_QUEUE_ENTRIES - 1) << 16 | (ADMIN_QUEUE_ENTRIES - 1)

HSM_FIRST_QID, AES_FIRST_QID = 1, 256
HSM_FIRST_VECTOR, AES_FIRST_VECTOR = 1, 16
MAX_TRANSFER = 8192
QUEUE_COUNT_REQUEST = 0x0080_0080  # Set Features DW11: 128 SQs and 128 CQs


def sq_doorbell(qid: int) -> int:
    """BAR2 offset of a queue's SQ tail doorbell."""
    return 8 * qid


def cq_doorbell(qid: int) -> int:
    """BAR2 offset of a queue's CQ head doorbell."""
    return 8 * qid + 4


@dataclass(frozen=True)
class Cap:
    raw: int

    mqes = property(lambda self: self.raw & 0xFFFF)
    cqr = property(lambda self: self.raw >> 16 & 1)
    ams = property(lambda self: self.raw >> 17 & 3)
    to = property(lambda self: self.raw >> 24 & 0xFF)
    dstrd = property(lambda self: self.raw >> 32 & 0xF)
    nssrs = property(lambda self: self.raw >> 36 & 1)
    css = property(lambda self: self.raw >> 37 & 0xFF)
    mpsmin = property(lambda self: self.raw >> 48 & 0xF)
    mpsmax = property(lambda self: self.raw >> 52 & 0xF)


class AdminOpcode(enum.IntEnum):
    DELETE_SQ = 0x00
    CREATE_SQ = 0x01
    DELETE_CQ = 0x04
    CREATE_CQ = 0x05
    IDENTIFY = 0x06
    ABORT = 0x08
    SET_FEATURES = 0x09
    GET_FEATURES = 0x0A
    SET_RESOURCE_COUNT = 0xC3
    GET_RESOURCE_COUNT = 0xC4


class Feature(enum.IntEnum):
    HSM_QUEUE_COUNT = 0x07
    AES_QUEUE_COUNT = 0xC1
    FIRMWARE_CAPABILITIES = 0xC2


CNS_CONTROLLER = 0x01


class Entry:
    """Base of fixed-size entries: ``LAYOUT`` packs the dataclass fields in declaration order."""

    LAYOUT: ClassVar[struct.Struct]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]   # every entry is a dataclass

    def pack(self) -> bytes:
        return self.LAYOUT.pack(*astuple(self))

    @classmethod
    def unpack(cls, raw: bytes):
        return cls(*cls.LAYOUT.unpack(raw[:cls.LAYOUT.size]))


class Completion(Entry):
    """A CQE: bit 0 of ``status_phase`` is the phase tag, the ``STATUS_BITS`` above it the status."""

    STATUS_BITS: ClassVar[int] = 11

    @property
    def phase(self) -> int:
        return self.status_phase & 1  # type: ignore[attr-defined]

    @property
    def status(self) -> int:
        return self.status_phase >> 1 & ((1 << self.STATUS_BITS) - 1)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AdminSqe(Entry):
    LAYOUT = struct.Struct("<BBH12xQQQ6I")
    opcode: int
    flags: int = 0
    cid: int = 0
    mptr: int = 0
    prp1: int = 0
    prp2: int = 0
    dw10: int = 0
    dw11: int = 0
    dw12: int = 0
    dw13: int = 0
    dw14: int = 0
    dw15: int = 0


@dataclass(frozen=True)
class AdminCqe(Completion):
    LAYOUT = struct.Struct("<I4xHHHH")
    dw0: int
    sqhd: int
    sqid: int
    cid: int
    status_phase: int


@dataclass(frozen=True)
class HsmSqe(Entry):
    LAYOUT = struct.Struct("<IIQQIQQB3xH14x")
    dw0: int  # opc 9:0, cmdset 13:10, PSDT 15:14, CID 31:16
    src_len: int = 0
    src_prp1: int = 0
    src_prp2: int = 0
    dst_len: int = 0
    dst_prp1: int = 0
    dst_prp2: int = 0
    session_flags: int = 0
    session_id: int = 0

    @staticmethod
    def command_word(opc: int, cid: int, cmdset: int = 0, psdt: int = 0) -> int:
        return (opc & 0x3FF) | (cmdset & 0xF) << 10 | (psdt & 3) << 14 | (cid & 0xFFFF) << 16


@dataclass(frozen=True)
class HsmCqe(Completion):
    LAYOUT = struct.Struct("<HBxHBxHHHH")
    byte_count: int
    session_flags: int
    session_id: int
    short_app_id: int
    sqhd: int
    sqid: int
    cid: int
    status_phase: int


@dataclass(frozen=True)
class AesSqe(Entry):
    """The 128-byte AES SQE; ``params`` is bytes 68-127 (``gcm_params`` or ``xts_params``)."""

    LAYOUT = struct.Struct("<4xHHHB13xI16sI16sB3x60s")
    attr: int
    cid: int
    session_id: int = 0
    short_app_id: int = 0
    src_len: int = 0
    src_sgl: bytes = bytes(16)
    dst_len: int = 0
    dst_sgl: bytes = bytes(16)
    frame_type: int = 1
    params: bytes = bytes(60)

    @staticmethod
    def attr_word(*, decrypt: bool = False, xts: bool = False, dul: int = 0, psdt: int = 1,
                  cmd_type: int = 5) -> int:
        """SQE bytes 4-5: GCM encrypt is 0x002C."""
        return int(decrypt) | (psdt & 1) << 2 | (cmd_type & 7) << 3 | int(xts) << 8 | (dul & 3) << 14


GCM_PARAMS = struct.Struct("<II16s12sIBBxxQQ")
XTS_PARAMS = struct.Struct("<II16s36x")
SGL_DESCRIPTOR = struct.Struct("<QI3xB")
SGL_DATA, SGL_SEGMENT, SGL_LAST_SEGMENT = 0x0, 0x2, 0x3
SGL_PER_PAGE = 255  # data descriptors per list page; slot 255 links to the next page


def gcm_params(key_id: int, aad_len: int, tag: bytes, iv: bytes, aligned_aad_len: int, src_tail_len: int = 0,
               dst_tail_len: int = 0, src_tail_addr: int = 0, dst_tail_addr: int = 0) -> bytes:
    return GCM_PARAMS.pack(key_id, aad_len, tag, iv, aligned_aad_len, src_tail_len, dst_tail_len, src_tail_addr,
                           dst_tail_addr)


def xts_params(key_id1: int, key_id2: int, tweak: bytes) -> bytes:
    return XTS_PARAMS.pack(key_id1, key_id2, tweak)


def sgl_descriptor(addr: int, length: int, kind: int = SGL_DATA, subtype: int = 0) -> bytes:
    return SGL_DESCRIPTOR.pack(addr, length, (kind & 0xF) << 4 | (subtype & 0xF))


@dataclass(frozen=True)
class AesCqe(Completion):
    LAYOUT = struct.Struct("<HH16s12s12xIIIHHHH")
    attr: int
    cid: int
    tag: bytes
    iv: bytes
    dst_tail_len: int
    fips_approved: int
    length: int
    sqhd: int
    sqid: int
    err: int
    status_phase: int

    STATUS_BITS = 15


@dataclass(frozen=True)
class Identify(Entry):
    """The 102-byte controller structure at the start of the Identify page."""

    LAYOUT = struct.Struct("<HH32s32s4xBxHBBBxHBBBxH8sIBB")
    vid: int
    ssvid: int
    serial_raw: bytes
    firmware_raw: bytes
    cp_mdts: int
    controller_id: int
    acl: int
    cp_sqes: int
    cp_cqes: int
    cp_maxcmd: int
    fp_mdts: int
    fp_sqes: int
    fp_cqes: int
    fp_maxcmd: int
    reserved_88: bytes
    version: int
    controller_type: int
    frmw: int

    @property
    def serial(self) -> str:
        return self.serial_raw.rstrip(b"\0 ").decode("ascii", "replace")

    @property
    def firmware_revision(self) -> str:
        return self.firmware_raw.rstrip(b"\0 ").decode("ascii", "replace")

    def entry_sizes_ok(self) -> bool:
        """The driver's probe check: low nibbles of the four entry-size bytes are 6/4/7/6."""
        return (self.cp_sqes & 0xF, self.cp_cqes & 0xF, self.fp_sqes & 0xF, self.fp_cqes & 0xF) == (6, 4, 7, 6)
