"""CPython's multiprocessing.Queue round trip, the baseline of `benches/sync.rs`.

Usage: python3 mp_queue.py N

The parent puts an integer into q1; a child process (forked, as the Rust side's) gets
it and puts it plus one into q2; the parent gets that. After a warm-up, N round trips are
timed in the parent and the mean is printed as one line: `ns_per_round_trip <float>`.
Every get has a timeout, and the child is a daemon that is terminated and joined on the
way out, so a lost child cannot hang the benchmark or outlive it.
"""

import multiprocessing as mp
import sys
import time

TIMEOUT = 30.0  # seconds any single get may wait
WARM_UP = 200  # round trips before the clock starts


def echo(q1, q2):
    while True:
        x = q1.get(timeout=TIMEOUT)
        if x is None:
            return
        q2.put(x + 1)


def main():
    n = int(sys.argv[1])
    ctx = mp.get_context("fork")
    q1, q2 = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=echo, args=(q1, q2), daemon=True)
    child.start()
    try:
        for i in range(WARM_UP):
            q1.put(i)
            assert q2.get(timeout=TIMEOUT) == i + 1
        start = time.perf_counter_ns()
        for i in range(n):
            q1.put(i)
            if q2.get(timeout=TIMEOUT) != i + 1:
                raise SystemExit("wrong value back from the child")
        elapsed = time.perf_counter_ns() - start
        q1.put(None)
        child.join(TIMEOUT)
    finally:
        if child.is_alive():
            child.terminate()
            child.join(TIMEOUT)
    print("ns_per_round_trip", elapsed / max(n, 1))


if __name__ == "__main__":
    main()
