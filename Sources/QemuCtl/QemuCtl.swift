// The QemuCtl library: VM configuration -> QEMU argv, launch, attach, control.
// Filled by issue #3.
