"""DDI operation handlers, grouped by family; importing this package registers all of them."""

from pyhsm.ddi.ops import (  # noqa: F401  (imported for their @handler registrations)
    aes, attest, bk3, certs, credentials, ecc, info, kdf, keymgmt, rsa)
