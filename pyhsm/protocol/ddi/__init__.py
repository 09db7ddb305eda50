"""DDI messages: MBOR, the schema of every operation, statuses, enumerations and the per-profile field formats (docs/ddi.md)."""
