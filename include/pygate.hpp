/*
 * pygate.hpp - pygate for C++17 and later: a header-only layer over
 * pygate.h, which it includes (and so Python.h).
 *
 *   pygate::view py = pygate::view::from_main();
 *   {
 *       pygate::entered in(py);          // enters; leaves at scope end,
 *       PyRun_SimpleString("x = 1");     // also when an exception unwinds
 *   }
 *   pygate::pool workers(py);
 *   workers.post([&counter] { ++counter; });          // nobody waits
 *   pygate::job<int> j = workers.submit([] { return 6 * 7; });
 *   int r = j.get();                                  // 42
 *
 * Errors are exceptions: every call that can fail throws pygate::error,
 * which carries the PYGATE_E* code, the call that failed and, for a job
 * or a call whose Python code raised, the formatted traceback.  Code built
 * with pybind11 or nanobind expects that, and an exception cannot be
 * forgotten where a code can.  Hot loops that expect failure (entering
 * while the interpreter may be shutting down) take the noexcept path:
 * entered(view, std::nothrow) and its ok()/code(), post_nothrow(), and the
 * C functions themselves, which are all still there.
 *
 * Ownership: view, guard, pool, interp_pool and job own their handle and
 * close it in their destructor; they are movable, not copyable.  entered
 * and detached are scopes: movable (within their thread), not copyable.
 *
 * Callables: post() and submit() take any callable, lambdas with captures
 * included, by value (moved or copied into the job): it lives until the
 * job has run, or has been cancelled, and is destroyed then, on whichever
 * thread ran or cancelled it.  A callable returns void or something
 * convertible to int.  A C++ exception thrown by a job's callable is
 * caught on the worker (it cannot cross pygate's C frames) and thrown
 * again by job::get(); in a post()ed job it becomes a Python RuntimeError,
 * reported through sys.unraisablehook as any job's exception nobody
 * collects.  call() runs its callable synchronously and throws its C++
 * exception in the caller.
 *
 * Threads: as the C functions say (pygate.h): any thread, except where a
 * function says otherwise.  Destructors that close a pool block as
 * pygate_pool_close() does; a job's destructor waits for the job to end
 * (as std::async's future does), since the job owns the callable.
 */
#ifndef PYGATE_HPP
#define PYGATE_HPP

#include "pygate.h"

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#if __cplusplus < 201703L
#  error "pygate.hpp needs C++17 or later"
#endif

/* The caller's file and line, for debug mode's reports, as default
 * arguments (gcc and clang). */
#define PYGATE_HPP_FILE_ __builtin_FILE()
#define PYGATE_HPP_LINE_ __builtin_LINE()

namespace pygate {

/* A failed pygate call: code() is the PYGATE_E* code. */
class error : public std::runtime_error {
public:
    error(int code, const char *call, const std::string &detail = "")
        : std::runtime_error(std::string(call) + ": " + pygate_err_name(code)
                             + " (" + pygate_strerror(code) + ")"
                             + (detail.empty() ? "" : "\n" + detail)),
          code_(code)
    {
    }
    int code() const noexcept { return code_; }

private:
    int code_;
};

namespace detail {

inline void
check(int rc, const char *call)
{
    if (rc < 0)
        throw error(rc, call);
}

/* A handle closed by `close` in the destructor; movable, not copyable. */
template <class Handle, int (*Close)(Handle *)>
class owned {
public:
    owned() noexcept = default;
    explicit owned(Handle *h) noexcept : h_(h) {}
    owned(owned &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    owned &operator=(owned &&o) noexcept
    {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    owned(const owned &) = delete;
    owned &operator=(const owned &) = delete;
    ~owned() { reset(); }

    Handle *get() const noexcept { return h_; }
    Handle *release() noexcept { return std::exchange(h_, nullptr); }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    void reset() noexcept
    {
        if (h_ != nullptr)
            Close(std::exchange(h_, nullptr));
    }

private:
    Handle *h_ = nullptr;
};

inline int close_view(pygate_view *v) { return pygate_view_close(v); }
inline int close_guard(pygate_guard *g) { return pygate_guard_close(g); }
inline int close_pool(pygate_pool *p) { return pygate_pool_close(p); }
inline int close_interp_pool(pygate_interp_pool *p)
{
    return pygate_interp_pool_close(p);
}

/* Sets a Python RuntimeError naming the C++ exception being handled;
 * attached, inside a catch. */
inline void
set_python_error_from_current_exception() noexcept
{
    try {
        throw;
    } catch (const std::exception &e) {
        PyErr_Format(PyExc_RuntimeError, "C++ exception: %s", e.what());
    } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "C++ exception (not a "
                        "std::exception)");
    }
}

/* Runs f, giving what it returns as an int (0 for void). */
template <class F>
int
invoke_as_int(F &f)
{
    using R = std::invoke_result_t<F &>;
    static_assert(std::is_void_v<R> || std::is_convertible_v<R, int>,
                  "a pygate job returns void or something convertible to "
                  "int");
    if constexpr (std::is_void_v<R>) {
        f();
        return 0;
    } else {
        return static_cast<int>(f());
    }
}

/* A job's callable and what it threw: owned by the job handle (waited
 * jobs) or freed by the completion callback (posted ones). */
template <class F>
struct task {
    F fn;
    bool keeps_thrown;             /* someone throws it again (a job's
                                      get(), call()); else it becomes a
                                      Python exception, reported */
    std::exception_ptr thrown;

    template <class G>
    task(G &&g, bool keeps) : fn(std::forward<G>(g)), keeps_thrown(keeps)
    {
    }

    /* pygate_job_fn: on the worker, attached. */
    static int run(void *arg) noexcept
    {
        task *t = static_cast<task *>(arg);
        try {
            return invoke_as_int(t->fn);
        } catch (...) {
            if (t->keeps_thrown)
                t->thrown = std::current_exception();
            else
                set_python_error_from_current_exception();
            return -1;
        }
    }

    /* pygate_done_fn of a posted job: called once, ran (attached) or
     * cancelled.  What it raised goes where a job's exception nobody
     * collects goes: sys.unraisablehook. */
    static void done(int, int, PyObject *exc, void *arg) noexcept
    {
        delete static_cast<task *>(arg);
        if (exc != nullptr) {
            PyObject *type = reinterpret_cast<PyObject *>(Py_TYPE(exc));
            Py_INCREF(type);
            Py_INCREF(exc);
            PyErr_Restore(type, exc, PyException_GetTraceback(exc));
            PyErr_WriteUnraisable(nullptr);
        }
    }
};

/* Posts fn to a pool (or an interpreter pool's member): nobody waits. */
template <class F, class Submit>
int
post_task(F &&fn, Submit submit) noexcept
{
    using T = task<std::decay_t<F>>;
    T *t = new (std::nothrow) T(std::forward<F>(fn), false);
    if (t == nullptr)
        return PYGATE_ENOMEM;
    int rc = submit(&T::run, t, &T::done);
    if (rc != PYGATE_OK)
        delete t;   /* done is not called on error */
    return rc;
}

} // namespace detail

/* ---- views and guards --------------------------------------------------- */

/* An owning view of an interpreter (pygate_view_*). */
class view : public detail::owned<pygate_view, detail::close_view> {
public:
    using owned::owned;

    static view from_main()
    {
        pygate_view *v = nullptr;
        detail::check(pygate_view_from_main(&v), "pygate_view_from_main");
        return view(v);
    }
    static view from_current()
    {
        pygate_view *v = nullptr;
        detail::check(pygate_view_from_current(&v),
                      "pygate_view_from_current");
        return view(v);
    }
    int64_t id() const noexcept { return pygate_view_id(get()); }
};

/* An owning guard (pygate_guard_*): the interpreter does not finalize
 * while it is held. */
class guard : public detail::owned<pygate_guard, detail::close_guard> {
public:
    using owned::owned;

    static guard from(pygate_view *v, const char *file = PYGATE_HPP_FILE_,
                      int line = PYGATE_HPP_LINE_)
    {
        pygate_guard *g = nullptr;
        detail::check(pygate_guard_from_view_at(v, &g, file, line),
                      "pygate_guard_from_view");
        return guard(g);
    }
    static guard from(const view &v, const char *file = PYGATE_HPP_FILE_,
                      int line = PYGATE_HPP_LINE_)
    {
        return from(v.get(), file, line);
    }
};

/* ---- scopes ------------------------------------------------------------- */

namespace detail {

/* A pygate_scope_ ended (left or re-attached) by the destructor. */
class scope {
public:
    scope(scope &&o) noexcept : s_(o.s_), rc_(o.rc_) { o.s_.active = 0; }
    scope &operator=(scope &&) = delete;
    scope(const scope &) = delete;
    scope &operator=(const scope &) = delete;
    ~scope() { pygate_scope_end_inline_(&s_); }

    bool ok() const noexcept { return s_.active != 0; }
    int code() const noexcept { return rc_; }

protected:
    scope(pygate_scope_ s, int rc) noexcept : s_(s), rc_(rc) {}

private:
    pygate_scope_ s_;
    int rc_;
};

} // namespace detail

/* Entered into an interpreter for the scope's life (pygate_enter; the
 * destructor leaves, as PYGATE_ENTERED does: an exception still set is
 * reported through sys.unraisablehook, a misuse in debug mode).  Throws
 * pygate::error when the entry fails; with std::nothrow it does not, and
 * ok()/code() say how it went (the scope then leaves nothing). */
class entered : public detail::scope {
public:
    explicit entered(pygate_view *v, const char *file = PYGATE_HPP_FILE_,
                     int line = PYGATE_HPP_LINE_)
        : entered(v, std::nothrow, file, line)
    {
        detail::check(code(), "pygate_enter");
    }
    explicit entered(const view &v, const char *file = PYGATE_HPP_FILE_,
                     int line = PYGATE_HPP_LINE_)
        : entered(v.get(), file, line)
    {
    }
    entered(pygate_view *v, const std::nothrow_t &,
            const char *file = PYGATE_HPP_FILE_,
            int line = PYGATE_HPP_LINE_) noexcept
        : scope(enter(v, file, line))
    {
    }
    entered(const view &v, const std::nothrow_t &nt,
            const char *file = PYGATE_HPP_FILE_,
            int line = PYGATE_HPP_LINE_) noexcept
        : entered(v.get(), nt, file, line)
    {
    }

private:
    static scope enter(pygate_view *v, const char *file, int line) noexcept;
    struct made : scope {
        made(pygate_scope_ s, int rc) noexcept : scope(s, rc) {}
    };
};

inline detail::scope
entered::enter(pygate_view *v, const char *file, int line) noexcept
{
    int rc = 0;
    pygate_scope_ s = pygate_scope_enter_inline_(v, &rc, file, line);
    return made(s, rc);
}

/* Detached from the interpreter for the scope's life (pygate_detach; the
 * destructor re-attaches): native work that lets other threads run
 * Python.  Throws pygate::error when the thread cannot detach. */
class detached : public detail::scope {
public:
    explicit detached(const char *file = PYGATE_HPP_FILE_,
                      int line = PYGATE_HPP_LINE_)
        : scope(detach(file, line))
    {
        detail::check(code(), "pygate_detach");
    }

private:
    static scope detach(const char *file, int line) noexcept
    {
        int rc = 0;
        pygate_scope_ s = pygate_scope_detach_(&rc, file, line);
        return made(s, rc);
    }
    struct made : scope {
        made(pygate_scope_ s, int rc) noexcept : scope(s, rc) {}
    };
};

/* ---- pygate_call with a callable ---------------------------------------- */

/* Runs fn() attached to the view's interpreter (pygate_call: maybe on
 * another caller's thread state, combined with theirs) and returns what
 * it returned as an int.  A C++ exception fn throws is thrown here, in
 * the caller; a Python exception it leaves set was reported through
 * sys.unraisablehook and is thrown as pygate::error (PYGATE_EEXCEPTION). */
template <class F>
int
call(pygate_view *v, F &&fn)
{
    detail::task<std::remove_reference_t<F> &> t(fn, true);
    int result = 0;
    int rc = pygate_call(v, &decltype(t)::run, &t, &result);
    if (t.thrown)
        std::rethrow_exception(t.thrown);
    detail::check(rc, "pygate_call");
    return result;
}

template <class F>
int
call(const view &v, F &&fn)
{
    return call(v.get(), std::forward<F>(fn));
}

/* ---- code that calls PyGILState itself ---------------------------------- */

/* Makes the calling thread's PyGILState_Ensure/Release pairs (ctypes,
 * Cython, SWIG, nanobind's gil_scoped_acquire) reuse the state pygate keeps
 * for it in the view's interpreter, the main one, instead of making and
 * deleting one per call (pygate_thread_keep_gilstate).  Call once, when
 * the thread starts, detached.  Throws pygate::error: PYGATE_EINVAL (not
 * the main interpreter's view), PYGATE_EBUSY (attached, or the slot holds
 * someone else's state), PYGATE_EFINALIZING, PYGATE_EGONE,
 * PYGATE_ENOMEM. */
inline void
keep_gilstate(pygate_view *v)
{
    detail::check(pygate_thread_keep_gilstate(v),
                  "pygate_thread_keep_gilstate");
}

inline void
keep_gilstate(const view &v)
{
    keep_gilstate(v.get());
}

/* ---- jobs and pools ----------------------------------------------------- */

/* A job a pool runs, waited for with get(): what the callable returned,
 * or the exception it threw (a C++ one as it was, a Python one as a
 * pygate::error with the traceback).  The destructor waits for the job to
 * end (it owns the callable) and closes it. */
template <class F>
class job {
public:
    job(job &&o) noexcept
        : handle_(std::exchange(o.handle_, nullptr)),
          task_(std::exchange(o.task_, nullptr))
    {
    }
    job &operator=(job &&) = delete;
    job(const job &) = delete;
    job &operator=(const job &) = delete;
    ~job()
    {
        if (handle_ != nullptr) {
            pygate_job_wait(handle_, -1, nullptr);
            pygate_job_close(handle_);
        }
        delete task_;
    }

    /* Waits (with the GIL released if attached) and returns the result. */
    int get()
    {
        int result = 0;
        int rc = pygate_job_wait(handle_, -1, &result);
        if (rc == PYGATE_OK && task_->thrown)
            std::rethrow_exception(task_->thrown);
        const char *text = nullptr;
        if (rc == PYGATE_OK && pygate_job_exception_text(handle_, &text)
                                   == PYGATE_OK
                && text != nullptr)
            throw error(PYGATE_EEXCEPTION, "the job's Python code", text);
        detail::check(rc, "pygate_job_wait");
        return result;
    }
    /* Whether it has ended, without waiting. */
    bool ready() const noexcept
    {
        return pygate_job_wait(handle_, 0, nullptr) != PYGATE_ETIMEDOUT;
    }
    pygate_job *handle() const noexcept { return handle_; }

private:
    template <class>
    friend struct submitter;
    job(pygate_job *h, detail::task<F> *t) noexcept : handle_(h), task_(t) {}

    pygate_job *handle_;
    detail::task<F> *task_;
};

/* Makes job<F>s (pools and interpreter pools). */
template <class F>
struct submitter {
    template <class Submit>
    static job<F> make(F fn, Submit submit)
    {
        auto *t = new detail::task<F>(std::move(fn), true);
        pygate_job *h = nullptr;
        int rc = submit(&detail::task<F>::run, t, &h);
        if (rc != PYGATE_OK) {
            delete t;
            throw error(rc, "pygate_pool_submit");
        }
        return job<F>(h, t);
    }
};

/* A worker pool on one interpreter (pygate_pool_*); the destructor closes
 * it (finishing or cancelling the queue as on_close says). */
class pool : public detail::owned<pygate_pool, detail::close_pool> {
public:
    using owned::owned;
    explicit pool(pygate_view *v, const pygate_pool_options *options = nullptr)
        : owned(open(v, options))
    {
    }
    explicit pool(const view &v, const pygate_pool_options *options = nullptr)
        : pool(v.get(), options)
    {
    }

    /* Queues fn; nobody waits.  Throws pygate::error when it is not
     * queued (the callable is destroyed then). */
    template <class F>
    void post(F &&fn)
    {
        detail::check(post_nothrow(std::forward<F>(fn)), "pygate_pool_submit");
    }
    /* post() returning the code instead of throwing. */
    template <class F>
    int post_nothrow(F &&fn) noexcept
    {
        pygate_pool *p = get();
        return detail::post_task(std::forward<F>(fn),
                                 [p](pygate_job_fn run, void *arg,
                                     pygate_done_fn done) {
                                     return pygate_pool_submit_then(
                                         p, run, arg, done, arg);
                                 });
    }
    /* Queues fn and returns its job, to get() the result from. */
    template <class F>
    job<std::decay_t<F>> submit(F &&fn)
    {
        pygate_pool *p = get();
        return submitter<std::decay_t<F>>::make(
            std::forward<F>(fn),
            [p](pygate_job_fn run, void *arg, pygate_job **h) {
                return pygate_pool_submit(p, run, arg, h);
            });
    }

private:
    static pygate_pool *open(pygate_view *v, const pygate_pool_options *o)
    {
        pygate_pool *p = nullptr;
        detail::check(pygate_pool_open(v, o, &p), "pygate_pool_open");
        return p;
    }
};

/* A value from pygate_interp_pool_call, freed by the destructor. */
class value {
public:
    value() noexcept = default;
    value(value &&o) noexcept : v_(o.v_) { o.v_ = {}; }
    value &operator=(value &&o) noexcept
    {
        if (this != &o) {
            pygate_value_clear(&v_);
            v_ = o.v_;
            o.v_ = {};
        }
        return *this;
    }
    value(const value &) = delete;
    value &operator=(const value &) = delete;
    ~value() { pygate_value_clear(&v_); }

    pygate_value_kind kind() const noexcept { return v_.kind; }
    long long integer() const noexcept { return v_.integer; }
    double number() const noexcept { return v_.number; }
    std::string text() const { return std::string(v_.data, v_.size); }
    const pygate_value &raw() const noexcept { return v_; }
    pygate_value *out() noexcept { return &v_; }

    /* Arguments (not owned: data must outlive the call). */
    static pygate_value of(long long i) noexcept
    {
        return {PYGATE_VALUE_INT, i, 0, nullptr, 0};
    }
    static pygate_value of(double d) noexcept
    {
        return {PYGATE_VALUE_FLOAT, 0, d, nullptr, 0};
    }
    static pygate_value of(const std::string &s) noexcept
    {
        return {PYGATE_VALUE_STR, 0, 0, s.data(), s.size()};
    }
    static pygate_value bytes(const void *data, size_t size) noexcept
    {
        return {PYGATE_VALUE_BYTES, 0, 0, static_cast<const char *>(data),
                size};
    }

private:
    pygate_value v_{};
};

/* Interpreters running Python in parallel (pygate_interp_pool_*); the
 * destructor closes the pool and ends the interpreters. */
class interp_pool
    : public detail::owned<pygate_interp_pool, detail::close_interp_pool> {
public:
    using owned::owned;
    explicit interp_pool(const pygate_interp_pool_options *options = nullptr)
        : owned(open(options))
    {
    }

    int size() const noexcept { return pygate_interp_pool_size(get()); }

    template <class F>
    void post(int index, F &&fn)
    {
        pygate_interp_pool *p = get();
        detail::check(detail::post_task(
                          std::forward<F>(fn),
                          [p, index](pygate_job_fn run, void *arg,
                                     pygate_done_fn done) {
                              return pygate_interp_pool_submit_then(
                                  p, index, run, arg, done, arg);
                          }),
                      "pygate_interp_pool_submit");
    }
    template <class F>
    job<std::decay_t<F>> submit(int index, F &&fn)
    {
        pygate_interp_pool *p = get();
        return submitter<std::decay_t<F>>::make(
            std::forward<F>(fn),
            [p, index](pygate_job_fn run, void *arg, pygate_job **h) {
                return pygate_interp_pool_submit(p, index, run, arg, h);
            });
    }
    /* module.function(*args) in interpreter index (or PYGATE_ANY_INTERP);
     * a Python exception is thrown as pygate::error with the traceback. */
    value call(int index, const char *module, const char *function,
               std::initializer_list<pygate_value> args = {})
    {
        value r;
        int rc = pygate_interp_pool_call(get(), index, module, function,
                                         args.begin(), args.size(), r.out());
        if (rc == PYGATE_EEXCEPTION)
            throw error(rc, "pygate_interp_pool_call", r.text());
        detail::check(rc, "pygate_interp_pool_call");
        return r;
    }

private:
    static pygate_interp_pool *open(const pygate_interp_pool_options *o)
    {
        pygate_interp_pool *p = nullptr;
        char why[256] = "";
        int rc = pygate_interp_pool_open(o, &p, why, sizeof why);
        if (rc != PYGATE_OK)
            throw error(rc, "pygate_interp_pool_open", why);
        return p;
    }
};

} // namespace pygate

#endif /* PYGATE_HPP */
