#ifndef CYAMLRAW_H
#define CYAMLRAW_H
#include <stddef.h>

/// The baseline of bench/yaml: pulls every libyaml event from each buffer and does
/// nothing else (no tree, no strings kept). Returns the number of events, or -1 when
/// libyaml reports an error.
long cyamlraw_count_events(const unsigned char *const *buffers, const size_t *lengths, size_t count);

#endif
