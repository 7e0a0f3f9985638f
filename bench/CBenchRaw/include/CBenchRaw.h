#ifndef CBENCHRAW_H
#define CBENCHRAW_H
/// Placeholder; the raw C QMP client of the benchmark lives here.
int cbench_raw_version(void);
#endif
