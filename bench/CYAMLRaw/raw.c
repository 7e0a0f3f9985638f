#include "CYAMLRaw.h"
#include <yaml.h>

long cyamlraw_count_events(const unsigned char *const *buffers, const size_t *lengths, size_t count) {
    long events = 0;
    for (size_t i = 0; i < count; i++) {
        yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser)) return -1;
        yaml_parser_set_input_string(&parser, buffers[i], lengths[i]);
        for (;;) {
            yaml_event_t event;
            if (!yaml_parser_parse(&parser, &event)) {
                yaml_parser_delete(&parser);
                return -1;
            }
            int done = event.type == YAML_STREAM_END_EVENT;
            yaml_event_delete(&event);
            events++;
            if (done) break;
        }
        yaml_parser_delete(&parser);
    }
    return events;
}

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

long cyamlraw_count_events_in_files(const char *const *paths, size_t count, long *bytes) {
    long events = 0;
    long total = 0;
    unsigned char *buffer = NULL;
    size_t capacity = 0;
    for (size_t i = 0; i < count; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) goto fail;
        struct stat st;
        if (fstat(fd, &st) != 0) { close(fd); goto fail; }
        size_t size = (size_t)st.st_size;
        if (size + 1 > capacity) {
            free(buffer);
            capacity = size + 1 > 2 * capacity ? size + 1 : 2 * capacity;
            buffer = malloc(capacity);
            if (!buffer) { close(fd); goto fail; }
        }
        size_t got = 0;
        while (got < size) {
            ssize_t n = read(fd, buffer + got, size - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        close(fd);
        if (got != size) goto fail;
        total += (long)size;
        const unsigned char *one[1] = {buffer};
        long n = cyamlraw_count_events(one, &size, 1);
        if (n < 0) goto fail;
        events += n;
    }
    free(buffer);
    if (bytes) *bytes = total;
    return events;
fail:
    free(buffer);
    return -1;
}
