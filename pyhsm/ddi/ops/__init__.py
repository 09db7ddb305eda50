"""DDI operation handlers, grouped by family; importing this package registers all of them."""

from pyhsm.ddi.ops import info  # noqa: F401  (imported for their @handler registrations)
