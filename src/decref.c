/*
 * decref.c - dropping a reference from any thread (pygate_decref).
 *
 * A native library's destructor or a callback's cleanup often runs on a
 * thread that is not attached, and attaching just to decref costs an
 * entry (or, done wrong, a crash).  So pygate_decref() decrefs at once on a
 * thread attached to the object's interpreter, and otherwise writes the
 * reference without a lock into a block of the calling thread's that is
 * queued on the interpreter's record (decref_queue.c); the next
 * pygate entry into that interpreter drops it (enter.c), and so does the
 * shutdown hook, before any thread state is torn down (lifecycle.c).
 * There is no deferred incref: a reference must exist to be given away
 * (PyO3 removed its deferred incref as unsound, PyO3#4095).
 */
#include "internal.h"

int
pygate__impl_decref(pygate_view *view, PyObject *obj)
{
    record *rec = pygate__view_record(view);
    if (rec == NULL)
        return PYGATE_EINVAL;
    if (obj == NULL)
        return PYGATE_OK;   /* as Py_XDECREF */
    int phase = atomic_load_explicit(&rec->phase, memory_order_acquire);
    if (phase != PHASE_OPEN)
        return phase == PHASE_GONE ? PYGATE_EGONE : PYGATE_EFINALIZING;
    /* Attached to the object's interpreter, which therefore cannot end
     * meanwhile: an ordinary decref. */
    PyThreadState *current = pygate__compat_current_tstate();
    if (current != NULL
            && PyThreadState_GetInterpreter(current) == rec->interp) {
        Py_DECREF(obj);
        return PYGATE_OK;
    }
    pygate_thread *t = pygate__thread_self(1);
    if (t == NULL)
        return PYGATE_ENOMEM;
    return pygate__decref_queue_push(rec, obj, t->decref_slots);
}
