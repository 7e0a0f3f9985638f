int cbench_raw_version(void) { return 1; }
