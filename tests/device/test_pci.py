"""PCI identity and resources of the azihsm function (azihsm-device.md section 1)."""

from __future__ import annotations

import pytest

from pyhsm.protocol import layout as L
from pyhsm.testing.qtest.pci import CAP_ID_MSIX, CAP_ID_PCIE, EXT_CAP_ID_SRIOV, PciConfig, enumerate_functions

pytestmark = pytest.mark.qemu


@pytest.fixture
def function(make_rig):
    return make_rig(probe=False).ctrl.function


def test_enumeration_finds_exactly_one_azihsm_with_ids_and_class(make_rig):
    rig = make_rig(probe=False)
    found = [f for f in enumerate_functions(PciConfig(rig.machine.qtest))
             if (f.vendor_id, f.device_id) == (L.VENDOR_ID, L.DEVICE_ID)]
    assert len(found) == 1
    assert found[0].class_code == L.CLASS_CODE
    assert found[0].class_code != 0x010802, "must not bind the in-tree nvme driver"


def test_three_64bit_memory_bars_of_exactly_4k(function):
    bars = function.probe_bars()
    assert [bar.index for bar in bars] == [0, 2, 4]
    for bar in bars:
        assert bar.size == L.BAR_SIZE, f"BAR{bar.index} is {bar.size} bytes"
        assert bar.is_64bit and not bar.is_io


def test_bars_decode_where_assigned(make_rig):
    ctrl = make_rig(probe=False).ctrl
    assert {i: b.size for i, b in ctrl.bars.items()} == {0: 4096, 2: 4096, 4: 4096}
    assert ctrl.read32(L.VS) == 0x0001_0400  # BAR0 answers at its new address


def test_pcie_without_sriov_capability(function):
    assert CAP_ID_PCIE in function.capabilities()
    extended = function.extended_capabilities()
    assert EXT_CAP_ID_SRIOV not in extended, f"extended capabilities: {extended}"


def test_msix_has_32_vectors_with_table_and_pba_in_bar4(function):
    offset = function.capabilities()[CAP_ID_MSIX]
    control = function.read(offset + 2, 2)
    table, pba = function.read(offset + 4), function.read(offset + 8)
    assert (control & 0x7FF) + 1 == L.MSIX_VECTORS
    assert table & 7 == 4 and pba & 7 == 4
    assert (table & ~7) + 16 * L.MSIX_VECTORS <= L.BAR_SIZE
    assert (pba & ~7) + 8 <= L.BAR_SIZE


def test_no_msi_or_intx_only_msix(function):
    assert 0x05 not in function.capabilities(), "MSI capability present; the driver uses MSI-X only"
