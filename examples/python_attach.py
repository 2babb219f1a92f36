"""Attach to a Rust shared_runtime arena from Python and change its objects.

Run by `cargo run --example python_interop`, which passes:
    segment-name  declaration-file  counter-offset  points-offset  points-len
"""
import ctypes
import sys
from multiprocessing import shared_memory


def attach(name):
    """Open the segment without letting Python's resource tracker unlink it at exit."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # Python 3.13+
    except TypeError:
        shm = shared_memory.SharedMemory(name=name)
        from multiprocessing import resource_tracker

        resource_tracker.unregister(shm._name, "shared_memory")
        return shm


def main():
    name, declaration, counter_at, points_at, n = sys.argv[1:6]
    namespace = {}
    with open(declaration) as f:
        exec(f.read(), namespace)  # the ctypes classes Rust generated from its layout
    Point = namespace["Point"]

    shm = attach(name)
    change(shm, Point, int(counter_at), int(points_at), int(n))
    shm.close()  # every ctypes view died with change()'s frame


def change(shm, Point, counter_at, points_at, n):
    counter = ctypes.c_int32.from_buffer(shm.buf, counter_at)
    points = (Point * n).from_buffer(shm.buf, points_at)
    print("python sees: counter =", counter.value,
          "points =", [(p.x, p.y) for p in points])
    counter.value += 1
    for p in points:
        p.x, p.y = p.x * 10, -p.y


if __name__ == "__main__":
    main()
