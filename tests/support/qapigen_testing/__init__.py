"""What the test suite and the benches share: where things are, real peers (QEMU,
qapigen-vm) to start, QMP fixtures, type-checking runs, wire strategies, and the VM
parity scenarios. Installed on the path by the project's editable development install."""
