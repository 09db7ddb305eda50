"""A short HSM workload for snapshot restores and benchmarks: driver bound, establish credential,
open session, generate a P-384 key, sign a SHA-384 digest (the host verifies the signature), close
the session. The default workload without the serial mailbox, attestation and AES steps."""

from __future__ import annotations

from pyhsm.guest.workloads import Step, Workload, aes, default
from pyhsm.guest.workloads.device import close_client, driver_bound

WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound),
           Step("establish credential", default.establish_credential),
           Step("open session", aes.open_session), Step("generate P-384 key", default.generate_key),
           Step("sign digest", default.sign_digest), Step("close session", default.close_session)),
    cleanup=close_client)
