"""CPython's locked shared counter, the baseline row of `benches/table.rs`.

Usage: python3 value_lock.py N

Times N increments of a `multiprocessing.sharedctypes.Value('q', lock=True)` (its lock
taken with `get_lock()`, as `Value::update` takes its own) after a warm-up, in one process,
and prints one line: `ns_per_increment <float>`.
"""

import sys
import time
from multiprocessing.sharedctypes import Value

WARM_UP = 10_000


def main():
    n = int(sys.argv[1])
    v = Value("q", 0, lock=True)
    lock = v.get_lock()
    for _ in range(WARM_UP):
        with lock:
            v.value += 1
    start = time.perf_counter_ns()
    for _ in range(n):
        with lock:
            v.value += 1
    elapsed = time.perf_counter_ns() - start
    assert v.value == WARM_UP + n
    print("ns_per_increment", elapsed / n)


if __name__ == "__main__":
    main()
