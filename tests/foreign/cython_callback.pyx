# cython: language_level=3
"""Foreign code that takes the GIL itself: a Cython `with gil` block in a
function called from a native thread, which Cython compiles into
PyGILState_Ensure/Release.  test_enter.cython_callback_reuses_kept_state
calls it through its address, with and without pygate's kept state.  It
counts its calls in a threading.local, whose data lives in the thread
state: a state made and deleted per call starts each call from 0."""
import threading

loc = threading.local()
seen = []


cdef void count() noexcept nogil:
    with gil:
        loc.n = getattr(loc, 'n', 0) + 1
        seen.append(loc.n)


def address():
    """count's address, for the C side to call."""
    return <size_t>&count
