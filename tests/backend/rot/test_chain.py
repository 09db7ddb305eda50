"""Certificate chains: own verifier, independent checks (OpenSSL, cryptography's X.509 path builder),
DICE extensions, key attestation reports and the verify-chain / puf-stats commands."""

import argparse
import datetime
import random
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509 import verification

from pyhsm.backend.rot import commands, power_on
from pyhsm.crypto import cbor
from pyhsm.protocol.dice import der, firmware, verify

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def ident(tmp_path_factory, firmware_dir):
    return power_on(tmp_path_factory.mktemp("dev") / "dev", firmware_dir, serial="SN-CHAIN")


def certs_of(chain):
    return [x509.load_der_x509_certificate(c) for c in chain]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pyhsm")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_p384_chain_verifies_against_the_firmware(ident, firmware_dir):
    reference = [firmware.load_stage(firmware_dir, n) for n in firmware.STAGES]
    result = verify.verify_chain(certs_of(ident.certificate_chain()), reference)
    assert [link.tcb.layer if link.tcb else None for link in result.links] == [0, 1, 2, None]
    assert [link.tcb.svn for link in result.links[:3]] == [1, 2, 3]
    assert result.ueid[0] == 0x01 and len(result.ueid) == 33


def test_mldsa87_chain_verifies_with_the_same_measurements(ident):
    pq = verify.verify_chain(certs_of(ident.mldsa87_certificate_chain()))
    classic = verify.verify_chain(certs_of(ident.certificate_chain()))
    ml_dsa_87 = "2.16.840.1.101.3.4.3.19"
    assert [c.signature_algorithm_oid.dotted_string for c in certs_of(ident.mldsa87_certificate_chain())] == [ml_dsa_87] * 3
    assert [link.tcb for link in pq.links] == [link.tcb for link in classic.links[:3]]
    assert pq.ueid == classic.ueid


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command (Debian package openssl)")
def test_openssl_verifies_the_chain(ident, tmp_path):
    pem = [c.public_bytes(serialization.Encoding.PEM) for c in certs_of(ident.certificate_chain())]
    (tmp_path / "root.pem").write_bytes(pem[0])
    (tmp_path / "inter.pem").write_bytes(pem[1] + pem[2])
    (tmp_path / "leaf.pem").write_bytes(pem[3])
    ok = subprocess.run([OPENSSL, "verify", "-x509_strict", "-CAfile", tmp_path / "root.pem",
                         "-untrusted", tmp_path / "inter.pem", tmp_path / "leaf.pem"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "inter.pem").write_bytes(pem[2])     # boot loader alias missing: no path
    bad = subprocess.run([OPENSSL, "verify", "-CAfile", tmp_path / "root.pem",
                          "-untrusted", tmp_path / "inter.pem", tmp_path / "leaf.pem"], capture_output=True)
    assert bad.returncode != 0


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command (Debian package openssl)")
def test_openssl_parses_the_tcbinfo_der(ident):
    cert = certs_of(ident.certificate_chain())[2]
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(der.OID_TCG_DICE_TCBINFO)).value.value
    out = subprocess.run([OPENSSL, "asn1parse", "-inform", "DER"], input=value, capture_output=True)
    assert out.returncode == 0
    text = out.stdout.decode()
    assert "cont [ 6 ]" in text and "sha384" in text and "OCTET STRING" in text


def test_cryptography_path_builder_accepts_the_chain(ident):
    certs = certs_of(ident.certificate_chain())
    verifier = (verification.PolicyBuilder().store(verification.Store([certs[0]]))
                .time(datetime.datetime(2030, 1, 1))
                .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=verification.ExtensionPolicy.permit_all())
                .build_client_verifier())
    assert len(verifier.verify(certs[-1], certs[1:-1]).chain) == 4
    with pytest.raises(verification.VerificationError):
        verifier.verify(certs[-1], certs[2:-1])


def test_tcbinfo_and_ueid_round_trip():
    tcb = der.TcbInfo(vendor="v", model="m", version="1.2", svn=300, layer=2,
                      fwids=[(der.OID_SHA384, bytes(range(48)))], type=b"runtime")
    assert der.TcbInfo.decode(tcb.encode()) == tcb
    assert der.decode_ueid(der.encode_ueid(b"\x01" + bytes(32))) == b"\x01" + bytes(32)
    assert der.oid_content("2.23.133.5.4.1") == bytes.fromhex("678105050401")
    with pytest.raises(der.DerError):
        der.TcbInfo.decode(tcb.encode()[:-3])


def test_verifier_rejects_broken_chains(ident):
    certs = certs_of(ident.certificate_chain())
    with pytest.raises(verify.VerificationError, match="not signed"):
        verify.verify_chain([certs[0], certs[2], certs[3]])
    with pytest.raises(verify.VerificationError, match="not signed"):
        verify.verify_chain([certs[1], certs[2]])            # first is not self-signed
    with pytest.raises(verify.VerificationError, match="at least"):
        verify.verify_chain(certs[:1])
    with pytest.raises(verify.VerificationError, match="not a certificate"):
        verify.load_certificates(b"garbage")


def make_report(key: ec.EllipticCurvePrivateKey, report_data: bytes, *, payload_edit=None) -> bytes:
    """A key attestation report as docs/ddi.md, "Attestation report" specifies it (the DDI AttestKey op is a teammate's)."""
    attested = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    cose_key = cbor.encode({1: 2, -1: 2, -2: attested.x.to_bytes(48, "big"), -3: attested.y.to_bytes(48, "big")})
    payload = {0: 1, 1: cose_key.ljust(525, b"\0"), 2: len(cose_key), 3: 0b100100,
               4: bytes(16), 5: report_data.ljust(128, b"\0"), 6: bytes(16)}
    protected = cbor.encode({1: -35, 3: "application/cbor"})
    payload_bytes = cbor.encode(payload)
    der_sig = key.sign(cbor.encode(["Signature1", protected, b"", payload_bytes]), ec.ECDSA(hashes.SHA384()))
    r, s = utils.decode_dss_signature(der_sig)
    if payload_edit:
        payload_bytes = payload_edit(payload_bytes)
    return cbor.encode(cbor.Tag(18, [protected, {}, payload_bytes, r.to_bytes(48, "big") + s.to_bytes(48, "big")]))


def test_protected_header_matches_the_ddi_bytes():
    assert cbor.encode({1: -35, 3: "application/cbor"}) == bytes.fromhex("a20138220370") + b"application/cbor"


def test_attestation_report_verifies_against_the_chain(ident):
    report = make_report(ident.attestation_key(), b"nonce")
    leaf = certs_of(ident.certificate_chain())[-1].public_key()
    parsed = verify.verify_report(report, leaf)
    assert parsed.report_data == b"nonce".ljust(128, b"\0") and parsed.flags == 0b100100
    assert cbor.decode(parsed.public_key)[1] == 2
    assert len(report) <= 834


def test_forged_or_damaged_reports_are_rejected(ident):
    leaf = certs_of(ident.certificate_chain())[-1].public_key()
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(verify.VerificationError, match="does not verify"):
        verify.verify_report(make_report(other, b"n"), leaf)
    flipped = make_report(ident.attestation_key(), b"n", payload_edit=lambda p: p[:-1] + bytes([p[-1] ^ 1]))
    with pytest.raises(verify.VerificationError, match="does not verify"):
        verify.verify_report(flipped, leaf)
    for junk in (b"", b"\xd2", b"\xd2\x84\x40", bytes(50)):
        with pytest.raises(verify.VerificationError):
            verify.verify_report(junk, leaf)


def test_mutated_reports_only_ever_fail_verification(ident):
    leaf = certs_of(ident.certificate_chain())[-1].public_key()
    report = make_report(ident.attestation_key(), b"fuzz")
    rng = random.Random(7)
    for _ in range(2000):
        mutated = bytearray(report)
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            pos = rng.randrange(len(mutated))
            if choice < 0.6:
                mutated[pos] = rng.randrange(256)
            elif choice < 0.8:
                del mutated[pos:pos + rng.randint(1, 40)]
            else:
                mutated[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        if bytes(mutated) == report:
            continue
        with pytest.raises(verify.VerificationError):
            verify.verify_report(bytes(mutated), leaf)


def test_verify_chain_command(ident, tmp_path, firmware_dir, capsys):
    device_dir = tmp_path / "state" / "devices" / "SN-CLI"
    power_on(device_dir, firmware_dir, serial="SN-CLI")
    (tmp_path / "report.cose").write_bytes(make_report(
        power_on(device_dir, firmware_dir, serial="SN-CLI").attestation_key(), b"\x42"))
    assert run_cli("verify-chain", str(tmp_path / "state"), "--firmware", str(firmware_dir),
                   "--report", str(tmp_path / "report.cose"), "--report-data", "42") == 0
    out = capsys.readouterr().out
    assert "ML-DSA-87" in out and "layer 2 runtime" in out and "signature OK" in out and out.endswith("OK\n")
    assert run_cli("verify-chain", str(device_dir / "chain.pem"), "--report", str(tmp_path / "report.cose"),
                   "--report-data", "43") == 1
    assert "report data differs" in capsys.readouterr().err


def test_verify_chain_command_fails_on_foreign_firmware(tmp_path, fw, capsys):
    power_on(tmp_path / "dev", fw, serial="SN-X")
    image = firmware.load_stage(fw, "bootloader")
    firmware.image_path(fw, "bootloader").write_bytes(
        firmware.pack("bootloader", image.version, image.svn, b"someone else's boot loader"))
    assert run_cli("verify-chain", str(tmp_path / "dev"), "--firmware", str(fw)) == 1
    assert "FWID does not match" in capsys.readouterr().err


def test_puf_stats_command(capsys):
    # the full 1,000 x 100 run is timed by tests/bench/bench_rot.py
    assert run_cli("puf-stats", "--devices", "200", "--reads", "20") == 0
    out = capsys.readouterr().out
    inter = float(out.split("inter-device distance  mean ")[1].split()[0])
    intra = float(out.split("intra-device distance mean ")[1].split()[0])
    assert "devices 200, reads 20" in out
    assert abs(inter - 0.5) < 0.01 and abs(intra - 0.10) < 0.01
