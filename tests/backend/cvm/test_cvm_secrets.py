"""Secrets stay inside: the link traffic (every REQUEST and RESPONSE payload) and the logs of a full
CVM and PQC session contain none of the HSM's own secrets and never the released key in clear."""

from __future__ import annotations

import logging

from kyber_py.ml_kem import ML_KEM_768

from pyhsm.crypto.kdf import kbkdf384
from pyhsm.protocol.cvm.wrap import Recipient
from pyhsm.protocol.ddi.envelope import open_request
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.types import KINDS, Family
from tests.backend.cvm.cvm_setup import WORKLOAD, set_up
from tests.backend.cvm.test_cvm_release import release
from tests.backend.ddi.ddi_helpers import Provisioned


def test_no_secret_crosses_the_link_or_reaches_the_logs(hsm: Provisioned, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    cvm = set_up(hsm)
    client = hsm.client
    released, _ = release(cvm, cvm.evidence(cvm.vm_a, b"vm-a"))
    cvm.vm_a.extend(7, b"tampered")
    try:
        release(cvm, cvm.evidence(cvm.vm_a, b"vm-a"))
    except Exception:
        pass
    sealed = client.cvm_seal(WORKLOAD, b"S" * 40)
    recipient = Recipient()
    client.cvm_unseal(cvm.evidence(cvm.vm_b, b"vm-b"), sealed, recipient.kem_pub, recipient.ecdh_pub)
    dsa = client.mldsa_generate_key(65)
    client.mldsa_sign(dsa.key_id, b"message")
    kem = client.mlkem_generate_key(768)
    _, ct = ML_KEM_768.encaps(kem.pub_key)
    client.mlkem_decapsulate(kem.key_id, ct)

    vault = hsm.partition.vault
    prov = vault.provisioning
    assert prov is not None
    secrets = {"released key": released, "MK": prov.masking_key, "bk_partition": prov.bk_partition,
               "unsealed data": b"S" * 40}
    digest = sealed[14:62]
    secrets["seal key"] = kbkdf384(prov.masking_key, b"azihsm-cvm-seal", digest, 32)
    attestation = hsm.partition._identity.attestation_key()
    secrets["attestation key"] = attestation.private_numbers().private_value.to_bytes(48, "big")
    for key_id, entry in vault.keys:
        if KINDS[entry.kind].family in (Family.MLDSA, Family.MLKEM, Family.SECRET, Family.AES):
            secrets[f"key 0x{key_id:04x} {entry.kind.name}"] = entry.material
    assert len(secrets) >= 9

    transport = client.transport
    requests = [r.payload for r in transport.requests]
    responses = [r.payload for r in transport.responses]
    unseal_index = max(i for i, r in enumerate(requests) if open_request(r).header.op == BY_NAME["CvmUnseal"].code)
    logs = "\n".join(r.getMessage() for r in caplog.records).encode()
    for name, secret in secrets.items():
        for i, payload in enumerate(requests + responses):
            if name == "unsealed data" and i < unseal_index:
                continue   # the guest sent its own data to CvmSeal; it must not come back in clear
            assert secret not in payload, f"{name} in link payload {i}"
        assert secret not in logs and secret.hex().encode() not in logs, f"{name} in the logs"
