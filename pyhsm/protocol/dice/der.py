"""A tiny DER encoder/decoder for the TCG DICE certificate extensions (TcbInfo, UEID).

TCG DICE Attestation Architecture:
  DiceTcbInfo ::= SEQUENCE { vendor [0] UTF8String, model [1] UTF8String, version [2] UTF8String,
      svn [3] INTEGER, layer [4] INTEGER, index [5] INTEGER, fwids [6] FWIDLIST, flags [7] BIT STRING,
      vendorInfo [8] OCTET STRING, type [9] OCTET STRING, ... }   -- all IMPLICIT and OPTIONAL
  FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }
  TcgUeid ::= SEQUENCE { ueid OCTET STRING }
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEQUENCE = 0x30
OCTET_STRING = 0x04
OBJECT_IDENTIFIER = 0x06
CONTEXT = 0x80
CONSTRUCTED = 0x20

OID_TCG_DICE_TCBINFO = "2.23.133.5.4.1"
OID_TCG_DICE_UEID = "2.23.133.5.4.4"
OID_SHA384 = "2.16.840.1.101.3.4.2.2"


class DerError(ValueError):
    """Malformed DER."""


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def integer_content(value: int) -> bytes:
    """Minimal two's-complement content octets of a non-negative INTEGER."""
    if value < 0:
        raise ValueError("only non-negative integers are encoded")
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def oid_content(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def decode_oid(content: bytes) -> str:
    if not content:
        raise DerError("empty OBJECT IDENTIFIER")
    arcs = [content[0] // 40, content[0] % 40]
    value = 0
    for b in content[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    if content[-1] & 0x80:
        raise DerError("truncated OBJECT IDENTIFIER")
    return ".".join(map(str, arcs))


def read_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """All (tag, content) elements of a concatenation of TLVs (single-byte tags, definite lengths)."""
    items = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise DerError("truncated TLV header")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or pos + count > len(data):
                raise DerError("unsupported or truncated length")
            length = int.from_bytes(data[pos:pos + count], "big")
            pos += count
        if pos + length > len(data):
            raise DerError("content runs past the end")
        items.append((tag, data[pos:pos + length]))
        pos += length
    return items


def read_single(data: bytes, tag: int) -> bytes:
    items = read_tlvs(data)
    if len(items) != 1 or items[0][0] != tag:
        raise DerError(f"expected one element with tag 0x{tag:02x}")
    return items[0][1]


@dataclass(frozen=True)
class TcbInfo:
    vendor: str
    model: str
    version: str
    svn: int
    layer: int
    fwids: list[tuple[str, bytes]] = field(default_factory=list)   # (hash OID, digest)
    type: bytes = b""

    def encode(self) -> bytes:
        fwids = b"".join(tlv(SEQUENCE, tlv(OBJECT_IDENTIFIER, oid_content(oid)) + tlv(OCTET_STRING, digest))
                         for oid, digest in self.fwids)
        body = (tlv(CONTEXT | 0, self.vendor.encode()) + tlv(CONTEXT | 1, self.model.encode())
                + tlv(CONTEXT | 2, self.version.encode()) + tlv(CONTEXT | 3, integer_content(self.svn))
                + tlv(CONTEXT | 4, integer_content(self.layer))
                + tlv(CONTEXT | CONSTRUCTED | 6, fwids) + tlv(CONTEXT | 9, self.type))
        return tlv(SEQUENCE, body)

    @classmethod
    def decode(cls, data: bytes) -> "TcbInfo":
        fields = dict(read_tlvs(read_single(data, SEQUENCE)))
        try:
            fwids = []
            for tag, fwid in read_tlvs(fields[CONTEXT | CONSTRUCTED | 6]):
                oid_tlv, digest_tlv = read_tlvs(fwid)
                if tag != SEQUENCE or oid_tlv[0] != OBJECT_IDENTIFIER or digest_tlv[0] != OCTET_STRING:
                    raise DerError("malformed FWID")
                fwids.append((decode_oid(oid_tlv[1]), digest_tlv[1]))
            return cls(vendor=fields[CONTEXT | 0].decode(), model=fields[CONTEXT | 1].decode(),
                       version=fields[CONTEXT | 2].decode(), svn=int.from_bytes(fields[CONTEXT | 3], "big"),
                       layer=int.from_bytes(fields[CONTEXT | 4], "big"), fwids=fwids,
                       type=fields.get(CONTEXT | 9, b""))
        except (KeyError, UnicodeDecodeError, ValueError) as e:
            raise DerError(f"malformed DiceTcbInfo: {e}") from None


def encode_ueid(ueid: bytes) -> bytes:
    return tlv(SEQUENCE, tlv(OCTET_STRING, ueid))


def decode_ueid(data: bytes) -> bytes:
    return read_single(read_single(data, SEQUENCE), OCTET_STRING)
