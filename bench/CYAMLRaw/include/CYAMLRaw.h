#ifndef CYAMLRAW_H
#define CYAMLRAW_H
#include <stddef.h>

/// The baseline of bench/yaml: pulls every libyaml event from each buffer and does
/// nothing else (no tree, no strings kept). Returns the number of events, or -1 when
/// libyaml reports an error.
long cyamlraw_count_events(const unsigned char *const *buffers, const size_t *lengths, size_t count);

/// The from-disk baseline of bench/yaml's command figure: for each path, open, fstat, one
/// read into a reused buffer, close, then every libyaml event pulled as above. Stores the
/// bytes read in `bytes` (when not NULL). Returns the number of events, or -1 when a file
/// cannot be read or libyaml reports an error.
long cyamlraw_count_events_in_files(const char *const *paths, size_t count, long *bytes);

#endif
