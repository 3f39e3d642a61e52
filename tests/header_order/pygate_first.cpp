// The same program, compiled as C++.
#include "pygate_first.c"
