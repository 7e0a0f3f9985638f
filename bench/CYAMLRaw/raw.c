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
