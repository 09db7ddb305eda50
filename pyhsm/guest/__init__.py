"""What runs inside the guest VM: the agent started by /sbin/pyhsm-init and its workloads (docs/architecture.md)."""
