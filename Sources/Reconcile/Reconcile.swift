// The Reconcile layer: desired (Manifest) vs actual (QemuCtl, over QMP) -> Plan;
// applying a Plan. Filled by issue #5.
