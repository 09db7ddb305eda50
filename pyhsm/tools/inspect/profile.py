"""What introspection needs to know about the guest kernel, derived from its own ``vmlinuz``.

Debian's System.map is a stub (the real one is in the -dbg package), so symbols come from the
image's export table (``__ksymtab``: ``init_task``, ``page_offset_base``, ``phys_base``) and the
printk ring from its static initialiser in ``.data``; structure offsets come from the image's BTF.
The profile is cached as JSON under ``build/inspect/`` keyed by the image's hash.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import struct
from pathlib import Path
from typing import Any

from pyhsm import paths
from pyhsm.tools.inspect import elf
from pyhsm.tools.inspect.btf import Btf

XZ_MAGIC = b"\xfd7zXZ\x00"
SYMBOLS = ("init_task", "page_offset_base", "phys_base")
# (struct, member path) pairs introspection reads, named "struct.path" in the profile
OFFSETS = (("task_struct", "tasks"), ("task_struct", "pid"), ("task_struct", "tgid"),
           ("task_struct", "comm"), ("task_struct", "mm"), ("task_struct", "real_parent"),
           ("task_struct", "__state"), ("mm_struct", "pgd"),
           ("printk_ringbuffer", "desc_ring.count_bits"), ("printk_ringbuffer", "desc_ring.descs"),
           ("printk_ringbuffer", "desc_ring.infos"), ("printk_ringbuffer", "text_data_ring.size_bits"),
           ("printk_ringbuffer", "text_data_ring.data"), ("prb_desc", "state_var"),
           ("prb_desc", "text_blk_lpos.begin"), ("prb_desc", "text_blk_lpos.next"),
           ("printk_info", "seq"), ("printk_info", "ts_nsec"), ("printk_info", "text_len"))
SIZES = ("prb_desc", "printk_info")


class ProfileError(RuntimeError):
    """The kernel image lacks something introspection needs (named in the message)."""


def default_vmlinuz() -> Path:
    """The guest kernel ``make images`` builds."""
    return paths.images() / "vmlinuz"


def load(vmlinuz: Path | None = None) -> dict[str, Any]:
    """The profile of ``vmlinuz`` (default: ``default_vmlinuz()``), from the cache under
    ``build/inspect`` or derived now (a few seconds)."""
    image = (vmlinuz or default_vmlinuz()).read_bytes()
    digest = hashlib.sha256(image).hexdigest()[:16]
    cache = paths.build() / "inspect"
    cached = cache / f"profile-{digest}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    profile = derive(vmlinux_from_bzimage(image))
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(profile, indent=1))
    return profile


def vmlinux_from_bzimage(image: bytes) -> bytes:
    """The ELF kernel inside an xz-compressed bzImage (Debian's CONFIG_KERNEL_XZ)."""
    start = image.find(XZ_MAGIC)
    if start < 0:
        raise ProfileError("no xz payload in the kernel image (only CONFIG_KERNEL_XZ is supported)")
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(image[start:])


def derive(vmlinux: bytes) -> dict[str, Any]:
    sections = elf.sections(vmlinux)
    if ".BTF" not in sections:
        raise ProfileError("the kernel has no .BTF section (CONFIG_DEBUG_INFO_BTF)")
    btf_section = sections[".BTF"]
    btf = Btf(vmlinux[btf_section.offset:btf_section.offset + btf_section.size])
    symbols = exported_symbols(vmlinux, sections, set(SYMBOLS))
    missing = set(SYMBOLS) - set(symbols)
    if missing:
        raise ProfileError(f"symbols not exported by this kernel: {sorted(missing)}")
    offsets = {f"{s}.{p}": btf.offset(s, p) for s, p in OFFSETS}
    symbols["printk_rb_static"] = _static_printk_ring(vmlinux, sections[".data"], offsets)
    return {"symbols": {k: hex(v) for k, v in symbols.items()}, "offsets": offsets,
            "sizes": {name: btf.size(name) for name in SIZES}}


def exported_symbols(vmlinux: bytes, sections: dict[str, elf.Section], wanted: set[str]) -> dict[str, int]:
    """Addresses of ``wanted`` from ``__ksymtab``/``__ksymtab_gpl`` (entries of three s32 offsets,
    each relative to its own field: value, name, namespace)."""
    def file_offset(addr: int) -> int:
        for s in sections.values():
            if s.addr <= addr < s.addr + s.size and s.type != 8:   # not NOBITS
                return s.offset + addr - s.addr
        raise ProfileError(f"address 0x{addr:x} is in no section")
    found = {}
    for table in ("__ksymtab", "__ksymtab_gpl"):
        sec = sections.get(table)
        for entry in range(0, sec.size if sec else 0, 12):
            value, name, _ = struct.unpack_from("<iii", vmlinux, sec.offset + entry)
            at = file_offset(sec.addr + entry + 4 + name)
            symbol = vmlinux[at:vmlinux.index(b"\0", at)].decode()
            if symbol in wanted:
                found[symbol] = sec.addr + entry + value
    return found


def _static_printk_ring(vmlinux: bytes, data: elf.Section, offsets: dict[str, int]) -> int:
    """The address of ``printk_rb_static``: the struct in .data whose rings have the configured
    sizes (LOG_BUF_SHIFT 12..25, descriptor count 1/32 of it) and point into the image."""
    lo, hi = data.addr, data.addr + data.size
    count_at, descs_at = offsets["printk_ringbuffer.desc_ring.count_bits"], \
        offsets["printk_ringbuffer.desc_ring.descs"]
    size_at, text_at = offsets["printk_ringbuffer.text_data_ring.size_bits"], \
        offsets["printk_ringbuffer.text_data_ring.data"]
    blob = vmlinux[data.offset:data.offset + data.size]
    for pos in range(0, len(blob) - 128, 8):
        size_bits = struct.unpack_from("<I", blob, pos + size_at)[0]
        if not 12 <= size_bits <= 25:
            continue
        if struct.unpack_from("<I", blob, pos + count_at)[0] != size_bits - 5:
            continue
        descs, text = (struct.unpack_from("<Q", blob, pos + at)[0] for at in (descs_at, text_at))
        if lo <= descs < hi + (64 << 20) and lo <= text < hi + (64 << 20):
            return data.addr + pos
    raise ProfileError("printk_rb_static not found in .data")
