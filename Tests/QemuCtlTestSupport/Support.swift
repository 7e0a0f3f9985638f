// Test support: QEMU/guest fixtures, fake QMP peer, traits.
