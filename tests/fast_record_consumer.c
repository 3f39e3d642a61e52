/*
 * fast_record_consumer.c - a program built against pygate.h with its
 * inline path, linked to the shared library (tests/fast_record_abi.sh runs
 * it with this library and with one that lacks the fast record).
 */
#include <pygate.h>

int
main(int argc, char **argv)
{
    (void)argv;
    /* No view, though the compiler cannot know it: the inline path reads
     * the record, and the library refuses the entry. */
    pygate_view *view = (pygate_view *)(uintptr_t)(argc - 1);
    pygate_token token;
    return pygate_enter(view, &token) == PYGATE_EINVAL ? 0 : 1;
}
