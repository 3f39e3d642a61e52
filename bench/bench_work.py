"""The jobs of bench/pool_bench.c, importable in every interpreter, for
bench/interp_executor.py (the same loop as pool_bench.c's work_code)."""


def work(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def empty():
    pass
