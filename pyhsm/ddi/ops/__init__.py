"""DDI operation handlers, grouped by family; importing this package registers all of them."""

from pyhsm.ddi import schemas_vendor  # noqa: F401  (adds the vendor op schemas to OPS)
from pyhsm.ddi.ops import (  # noqa: F401  (imported for their @handler registrations)
    aes, attest, bk3, certs, credentials, cvm, ecc, info, kdf, keymgmt, pqc, rsa)
