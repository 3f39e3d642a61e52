"""The jobs of bench/pool_bench.c, importable in every interpreter, for
bench/interp_executor.py (the same loop as pool_bench.c's work_code)."""


def work(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def empty():
    pass


SMALL = tuple(range(128))


def spin(n):
    """As work(n), without allocating: every int stays in CPython's cache
    of small ints, so the allocator's state cannot change its speed."""
    s = 0
    for _ in range(n // 128 + 1):
        for i in SMALL:
            s = (s + i * 3) & 63
    return s
