/* bench/raw-query: the raw observation client as a program of its own, for bench/scale's
 * process-to-process comparison with `qemuctl diff` (which pays exec, loading and exit as
 * this does). Connects to every socket given, on one thread with poll(2): greeting,
 * qmp_capabilities, query-status (cbench_query_all). Exit status 0 when all answered. */
#include <stdio.h>
#include "CBenchRaw.h"

int main(int argc, char **argv) {
    int answered = cbench_query_all((const char *const *)argv + 1, argc - 1);
    if (answered != argc - 1) {
        fprintf(stderr, "raw-query: only %d of %d answered\n", answered, argc - 1);
        return 1;
    }
    return 0;
}
