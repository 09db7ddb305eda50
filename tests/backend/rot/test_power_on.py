"""power_on: enrolment, stable identity, measured boot, anti-rollback, at-rest keys, zeroization."""

import json
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyhsm.backend.rot import RootOfTrustFailure, device, dice, power_on
from pyhsm.backend.rot.silicon import Conditions
from pyhsm.protocol.dice import firmware, verify


def repack(fw_dir, name, *, payload=None, svn=None, version=None):
    stage = firmware.load_stage(fw_dir, name)
    body = stage.image[firmware.HEADER.size:]
    firmware.image_path(fw_dir, name).write_bytes(
        firmware.pack(name, version or stage.version, stage.svn if svn is None else svn,
                      body if payload is None else payload))


def spki(cert_der: bytes) -> bytes:
    return x509.load_der_x509_certificate(cert_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_first_power_on_manufactures_and_enrols(tmp_path, firmware_dir):
    ident = power_on(tmp_path / "dev", firmware_dir, serial="SN-1")
    for member in ("serial", "at_rest_key", "certificate_chain", "attestation_key"):
        assert hasattr(ident, member)
    assert ident.serial == "SN-1"
    for name in ("silicon.json", "nv.json", "chain.pem", "chain-mldsa87.pem"):
        assert (tmp_path / "dev" / name).is_file()
    nv = json.loads((tmp_path / "dev" / "nv.json").read_text())
    assert nv["helper"]["cells"] == 8192
    assert nv["min_svn"] == {"rom": 1, "bootloader": 2, "runtime": 3}


def test_identity_is_stable_across_power_ons(tmp_path, firmware_dir):
    first = power_on(tmp_path / "dev", firmware_dir, serial="SN-1")
    for _ in range(20):
        again = power_on(tmp_path / "dev", firmware_dir, serial="SN-1")
        assert list(again.certificate_chain()) == list(first.certificate_chain())
        assert again.at_rest_key(b"store") == first.at_rest_key(b"store")
        assert again.attestation_key().private_numbers() == first.attestation_key().private_numbers()


def test_attestation_key_is_certified_by_the_last_certificate(tmp_path, firmware_dir):
    ident = power_on(tmp_path / "dev", firmware_dir, serial="SN-1")
    chain = ident.certificate_chain()
    assert len(chain) == 4
    assert spki(chain[-1]) == ident.attestation_key().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert all(len(c) <= 2048 for c in chain)     # GetCertificate's limit


def test_devices_differ_and_at_rest_keys_are_device_bound(tmp_path, firmware_dir):
    a = power_on(tmp_path / "a", firmware_dir, serial="SN-A")
    b = power_on(tmp_path / "b", firmware_dir, serial="SN-B")
    assert a.at_rest_key(b"store") != b.at_rest_key(b"store")
    assert a.at_rest_key(b"store") != a.at_rest_key(b"other")
    assert len(a.at_rest_key(b"store")) == 32
    assert spki(a.certificate_chain()[0]) != spki(b.certificate_chain()[0])


def test_copied_nv_store_does_not_work_on_another_device(tmp_path, firmware_dir):
    power_on(tmp_path / "a", firmware_dir, serial="SN-A")
    power_on(tmp_path / "b", firmware_dir, serial="SN-B")
    shutil.copy(tmp_path / "a" / "nv.json", tmp_path / "b" / "nv.json")
    with pytest.raises(RootOfTrustFailure, match="check value"):
        power_on(tmp_path / "b", firmware_dir, serial="SN-B")


def test_silicon_belongs_to_one_serial(tmp_path, firmware_dir):
    power_on(tmp_path / "a", firmware_dir, serial="SN-A")
    with pytest.raises(RootOfTrustFailure, match="belongs to device"):
        power_on(tmp_path / "a", firmware_dir, serial="SN-OTHER")


def test_corrupt_nv_store_is_a_failure(tmp_path, firmware_dir):
    power_on(tmp_path / "a", firmware_dir, serial="SN-A")
    (tmp_path / "a" / "nv.json").write_text("{not json")
    with pytest.raises(RootOfTrustFailure, match="NV store"):
        power_on(tmp_path / "a", firmware_dir, serial="SN-A")


def test_uds_is_zeroized_after_the_first_cdi(tmp_path, firmware_dir, monkeypatch):
    seen = []
    real = dice.next_cdi

    def spy(parent, stage):
        seen.append(parent)
        return real(parent, stage)
    monkeypatch.setattr(dice, "next_cdi", spy)
    power_on(tmp_path / "dev", firmware_dir, serial="SN-Z")
    assert len(seen) == 3 and all(isinstance(s, bytearray) for s in seen)
    assert all(s == bytearray(48) for s in seen)     # UDS, CDI 0 and CDI 1 all overwritten


def test_glitched_power_on_fails_and_leaves_the_device_intact(tmp_path, firmware_dir):
    good = power_on(tmp_path / "dev", firmware_dir, serial="SN-G")
    nv_before = (tmp_path / "dev" / "nv.json").read_bytes()
    with pytest.raises(RootOfTrustFailure):
        power_on(tmp_path / "dev", firmware_dir, serial="SN-G", conditions=Conditions(noise_scale=50))
    assert (tmp_path / "dev" / "nv.json").read_bytes() == nv_before
    assert power_on(tmp_path / "dev", firmware_dir, serial="SN-G").at_rest_key(b"k") == good.at_rest_key(b"k")


def test_stuck_noise_source_fails_power_on(tmp_path, firmware_dir):
    with pytest.raises(RootOfTrustFailure, match="repetition count"):
        power_on(tmp_path / "dev", firmware_dir, serial="SN-S", noise_source=lambda n: bytes(n))


def test_corrupted_stage_is_refused(tmp_path, fw):
    image = bytearray(firmware.image_path(fw, "bootloader").read_bytes())
    image[-1] ^= 1
    firmware.image_path(fw, "bootloader").write_bytes(bytes(image))
    with pytest.raises(RootOfTrustFailure, match="bootloader: payload does not match"):
        power_on(tmp_path / "dev", fw, serial="SN-T")


@pytest.mark.parametrize("damage", ["missing", "truncated", "wrong-stage"])
def test_malformed_stage_is_refused(tmp_path, fw, damage):
    path = firmware.image_path(fw, "runtime")
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:20])
    else:
        shutil.copy(firmware.image_path(fw, "bootloader"), path)
    with pytest.raises(RootOfTrustFailure, match="firmware stage runtime"):
        power_on(tmp_path / "dev", fw, serial="SN-M")


def test_changed_stage_changes_identities_from_that_layer_on(tmp_path, fw):
    before = power_on(tmp_path / "dev", fw, serial="SN-U")
    reference = [firmware.load_stage(fw, n) for n in firmware.STAGES]
    repack(fw, "runtime", payload=b"patched runtime", version="3.4.2")
    after = power_on(tmp_path / "dev", fw, serial="SN-U")
    old, new = before.certificate_chain(), after.certificate_chain()
    assert spki(old[0]) == spki(new[0]) and spki(old[1]) == spki(new[1])   # Device ID and boot loader alias
    assert spki(old[2]) != spki(new[2]) and spki(old[3]) != spki(new[3])   # runtime alias, attestation key
    assert before.at_rest_key(b"k") == after.at_rest_key(b"k")             # state survives an update
    certs = [x509.load_der_x509_certificate(c) for c in new]
    links = verify.verify_chain(certs).links
    assert links[2].tcb.version == "3.4.2"
    assert links[2].tcb.fwids[0][1] == firmware.load_stage(fw, "runtime").measurement
    with pytest.raises(verify.VerificationError, match="layer 2"):
        verify.verify_chain(certs, reference)


def test_rollback_below_minimum_svn_is_refused(tmp_path, fw):
    power_on(tmp_path / "dev", fw, serial="SN-R")
    repack(fw, "runtime", svn=2)
    with pytest.raises(RootOfTrustFailure, match="rollback"):
        power_on(tmp_path / "dev", fw, serial="SN-R")
    repack(fw, "runtime", svn=4)
    power_on(tmp_path / "dev", fw, serial="SN-R")
    assert json.loads((tmp_path / "dev" / "nv.json").read_text())["min_svn"]["runtime"] == 4
    repack(fw, "runtime", svn=3)
    with pytest.raises(RootOfTrustFailure, match="SVN 3, below the device's minimum 4"):
        power_on(tmp_path / "dev", fw, serial="SN-R")


def test_failures_are_logged(tmp_path, fw, caplog):
    firmware.image_path(fw, "rom").unlink()
    with pytest.raises(RootOfTrustFailure):
        power_on(tmp_path / "dev", fw, serial="SN-L")
    assert any("root of trust failure" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_device_directory_files_are_public_only(tmp_path, firmware_dir):
    ident = power_on(tmp_path / "dev", firmware_dir, serial="SN-P")
    blob = b"".join(p.read_bytes() for p in (tmp_path / "dev").iterdir())
    assert ident.at_rest_key(b"store") not in blob
    assert device.CHAIN_FILE == "chain.pem"
