"""The HSM's DDI command set: MBOR codec and schemas, the partition state machine and its operations."""
