"""qapigen: typed Python bindings for QEMU QMP from QAPI schemas."""
