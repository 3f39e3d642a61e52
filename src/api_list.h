/*
 * api_list.h - the one list of pygate's exported functions that another
 * copy of pygate in the process may be handed (api.c), PEP 788's apart
 * (api.c adds them): api.c makes the exported wrappers and the table of
 * functions from it, internal.h declares this copy's implementations,
 * pygate__impl_<name>, which internal code calls.
 */
#ifndef PYGATE_API_LIST_H
#define PYGATE_API_LIST_H

/* X(meets, return type, name, (parameters), (arguments)), void functions
 * apart; `meets` marks those that may make this copy's first record. */
#define PYGATE__API_CORE_RETURNING(X)                                        \
    X(1, int, view_from_current, (pygate_view **out), (out))                 \
    X(1, int, view_from_main, (pygate_view **out), (out))                    \
    X(0, int, view_close_at, (pygate_view *view, const char *file,          \
      int line), (view, file, line))                                         \
    X(0, int64_t, view_id, (const pygate_view *view), (view))                \
    X(0, int, guard_from_view_at, (pygate_view *view, pygate_guard **out,    \
      const char *file, int line), (view, out, file, line))                  \
    X(1, int, guard_from_current_at, (pygate_guard **out, const char *file,  \
      int line), (out, file, line))                                          \
    X(0, int, guard_close, (pygate_guard *guard), (guard))                   \
    X(0, int64_t, guard_id, (const pygate_guard *guard), (guard))            \
    X(0, int, decref, (pygate_view *view, PyObject *obj), (view, obj))        \
    X(0, int, pool_open, (pygate_view *view,                                  \
      const pygate_pool_options *options, pygate_pool **out),                \
      (view, options, out))                                                  \
    X(0, int, pool_close, (pygate_pool *pool), (pool))                        \
    X(0, int, pool_submit, (pygate_pool *pool, pygate_job_fn fn, void *arg,   \
      pygate_job **job), (pool, fn, arg, job))                               \
    X(0, int, pool_submit_then, (pygate_pool *pool, pygate_job_fn fn,         \
      void *arg, pygate_done_fn done, void *done_arg),                       \
      (pool, fn, arg, done, done_arg))                                       \
    X(0, int, pool_counts, (pygate_pool *pool, uint64_t *submitted,           \
      uint64_t *completed, uint64_t *cancelled),                             \
      (pool, submitted, completed, cancelled))                               \
    X(0, int, job_wait, (pygate_job *job, double timeout, int *result),       \
      (job, timeout, result))                                                \
    X(0, int, job_exception, (pygate_job *job, PyObject **exc), (job, exc))   \
    X(0, int, job_exception_text, (pygate_job *job, const char **text),       \
      (job, text))                                                           \
    X(0, int, job_close, (pygate_job *job), (job))                            \
    X(0, int, call, (pygate_view *view, pygate_job_fn fn, void *arg,          \
      int *result), (view, fn, arg, result))                                 \
    X(0, int, interp_pool_open, (const pygate_interp_pool_options *options,   \
      pygate_interp_pool **out, char *error, size_t error_size),             \
      (options, out, error, error_size))                                     \
    X(0, int, interp_pool_close, (pygate_interp_pool *pool), (pool))          \
    X(0, int, interp_pool_size, (pygate_interp_pool *pool), (pool))           \
    X(0, int, interp_pool_parallel, (pygate_interp_pool *pool), (pool))       \
    X(0, int, interp_pool_view, (pygate_interp_pool *pool, int index,         \
      pygate_view **out), (pool, index, out))                                \
    X(0, int, interp_pool_submit, (pygate_interp_pool *pool, int index,       \
      pygate_job_fn fn, void *arg, pygate_job **job),                        \
      (pool, index, fn, arg, job))                                           \
    X(0, int, interp_pool_submit_then, (pygate_interp_pool *pool, int index,  \
      pygate_job_fn fn, void *arg, pygate_done_fn done, void *done_arg),     \
      (pool, index, fn, arg, done, done_arg))                                \
    X(0, int, interp_pool_counts, (pygate_interp_pool *pool,                  \
      uint64_t *submitted, uint64_t *completed, uint64_t *cancelled),        \
      (pool, submitted, completed, cancelled))                               \
    X(0, int, interp_pool_call, (pygate_interp_pool *pool, int index,         \
      const char *module, const char *function, const pygate_value *args,    \
      size_t nargs, pygate_value *result),                                   \
      (pool, index, module, function, args, nargs, result))                  \
    X(0, int, set_drain_limits, (double report_every, double give_up_after), \
      (report_every, give_up_after))                                         \
    X(0, int, enter_at, (pygate_view *view, pygate_token *token,             \
      const char *file, int line), (view, token, file, line))                \
    X(0, int, enter_guarded_at, (pygate_guard *guard, pygate_token *token,   \
      const char *file, int line), (guard, token, file, line))               \
    X(0, int, leave_at, (pygate_token token, const char *file, int line),    \
      (token, file, line))                                                   \
    X(0, int, detach_at, (pygate_token *token, const char *file, int line),  \
      (token, file, line))                                                   \
    X(0, int, reattach_at, (pygate_token token, const char *file, int line), \
      (token, file, line))                                                   \
    X(0, unsigned, thread_depth, (void), ())                                 \
    X(0, int, thread_release, (void), ())                                    \
    X(0, int, thread_keep_gilstate, (pygate_view *view), (view))             \
    X(0, int, host_init, (const PyConfig *config), (config))                 \
    X(0, pygate_view *, host_view, (void), ())                               \
    X(0, int, host_shutdown, (void), ())                                     \
    X(0, int, host_fork, (pid_t *pid), (pid))                                \
    X(0, pygate_scope_, scope_enter_, (pygate_view *view, int *rc,           \
      const char *file, int line), (view, rc, file, line))                   \
    X(0, pygate_scope_, scope_detach_, (int *rc, const char *file, int line), \
      (rc, file, line))

#define PYGATE__API_CORE_VOID(X)                                             \
    X(0, void, value_clear, (pygate_value *value), (value))                  \
    X(0, void, scope_end_, (pygate_scope_ *scope), (scope))

#endif
