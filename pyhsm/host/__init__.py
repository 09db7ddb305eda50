"""``pyhsm run``: boot an emulated V7 server (QEMU + azihsm + backend) and run a guest workload.

Host side: ``commands`` (the CLI), ``session`` (one run end to end), ``backend``, ``vm``, ``accel``,
``images``. Guest side (runs inside the VM, standard library and pyhsm.client only): ``guest`` (the
agent PID 1 starts) and ``workloads``. ``report`` is the console line format both sides share.
"""
