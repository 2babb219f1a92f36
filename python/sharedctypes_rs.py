"""Read a shared_runtime arena (the Rust crate) from Python, by name.

Standard library only (``multiprocessing.shared_memory``, ``ctypes``, ``struct``)::

    import ctypes, sharedctypes_rs

    with sharedctypes_rs.open_arena("counter-demo") as arena:
        for obj in arena.objects():
            print(obj.name, obj.label, obj.len)
        hits = arena.get("atomic-hits", ctypes.c_uint64)   # a RawValue<u64>
        print(hits.value)

What Python CAN do
    * open a named arena (``Arena::create_segment`` in Rust) and check its header: magic
      number, format version, capacity, allocator bounds;
    * list the named objects: name, kind, element type, size, length, fingerprint;
    * map a named object as a ``ctypes`` object after checking its kind, its element size
      and its layout fingerprint against the declaration Rust generates
      (``TypeLayout::to_ctypes``, whose classes carry ``_shared_fingerprint_``);
    * read values, and write the raw objects (``RawValue``, ``RawArray``) one aligned word
      (8 bytes or less, at its natural alignment) at a time: ``v.value = 5``. On x86-64 such a
      read or write is one machine instruction, so Rust sees the old or the new value, never
      a mix. Anything larger (a struct, a slice) can be torn by a concurrent writer.

What Python CANNOT do (yet)
    * take a Rust lock. ``get`` maps a ``Value``/``Array``'s data (after its 24-byte lock
      cell) but does not lock it: reading it races with Rust's ``update``, and writing it
      behind the lock's back breaks what Rust's lock promises. Only read a locked object,
      and only when a torn or stale value is acceptable. A ``Lock``/``RLock`` is refused.
    * atomics: ``hits.value += 1`` is a read then a write, so it loses increments made by
      Rust's ``fetch_add`` (or another Python) in between. There is no compare-exchange.
    * keep an object alive: Rust frees a removed object once no *Rust* process has it open.
      Python takes no open record, so a view must not outlive the name's ``remove``.

A damaged or foreign segment raises :class:`ArenaError` (never a crash, never a hang):
every offset read from the segment is bounds-checked before use, and the directory walk
stops at the first offset it meets twice. The directory is read without the arena's lock
(Python cannot take it); a walk that meets a change in progress is retried a few times
before it is reported.
"""

import ctypes
import struct
import time
from multiprocessing import shared_memory
from typing import NamedTuple

__all__ = [
    "open_arena",
    "fingerprints",
    "Arena",
    "ObjectInfo",
    "ArenaError",
    "InvalidArena",
    "NotFoundError",
    "KindMismatch",
    "LayoutMismatch",
]

# The arena format, as shared-runtime/src/arena/{header,heap,registry,kind,tags}.rs write it
# (format version 4; docs/design.md, "Named arenas, named objects, handles").
MAGIC = int.from_bytes(b"shctypes", "little")
VERSION = 4
_HEADER = struct.Struct("<QIIQQqQQ")  # magic version _ capacity id pid start pidns
_HEAP = 64  # the heap state follows the header's scalars and the 8-byte lock word
_START, _TOP, _COMMITTED = _HEAP, _HEAP + 8, _HEAP + 16
_REGISTRY = _HEAP + 8 * (7 + 2 + 128)  # 7 counters, the bin bitmap, 128 bins
_REBUILDING = _REGISTRY + 8
_SLOT_ALLOCATIONS = _REBUILDING + 8
_SLAB_MAP = _SLOT_ALLOCATIONS + 8  # the slab map's offset (slabs are not read here)
HEAP_START = -(-(_SLAB_MAP + 8) // 64) * 64  # the header's size, rounded to 64
_GRAIN, _HDR, _MIN_BLOCK, _USED = 16, 16, 32, 1
# The flag bits of a block's size word (heap.rs FLAGS): the low GRAIN bits, RECORD_BLOCK
# and the six KIND_TAG bits; the rest is the block's size.
_RECORD_BLOCK, _KIND_TAG = 1 << 62, 0x3F << 56
_FLAGS = (_GRAIN - 1) | _RECORD_BLOCK | _KIND_TAG
_REGISTRY_OWNER = 0xFFFFFFFF
_ENTRY = struct.Struct("<7Q4I48s200s")  # next object len fp size align data_at kind ...
_LOCK_CELL = 24
_ENTRY_BLOCK = -(-(_HDR + _ENTRY.size) // _GRAIN) * _GRAIN  # the smallest entry's block
_M64 = (1 << 64) - 1

# ObjectKind::code -> (kind, lock kind)
_KINDS = {
    1: ("RawValue", None),
    2: ("RawArray", None),
    4: ("Value", "Lock"),
    5: ("Value", "RLock"),
    6: ("Array", "Lock"),
    7: ("Array", "RLock"),
    8: ("Lock", "Lock"),
    9: ("RLock", "RLock"),
}

# A walk that fails is retried this often (another process may be changing the directory).
_ATTEMPTS = 3


class ArenaError(Exception):
    """Anything this module refuses."""


class InvalidArena(ArenaError):
    """The segment is not an arena this module reads, or it is damaged."""


class NotFoundError(ArenaError, LookupError):
    """No such segment, or no object of that name."""


class KindMismatch(ArenaError):
    """The object is of another kind than asked for (or one Python cannot use)."""


class LayoutMismatch(ArenaError):
    """The ctypes declaration does not describe the object's element type."""


class ObjectInfo(NamedTuple):
    """One named object as the directory records it."""

    name: str
    kind: str  # RawValue, RawArray, Value, Array, Lock, RLock, or "unknown kind N"
    lock: object  # "Lock" / "RLock" for the kinds that carry (or are) a lock, else None
    type_name: str  # the element type as Rust names it: u64, [f64; 3], Point ("" for locks)
    label: str  # Value<u64, RLock>, RawArray<u8>, Lock
    size: int  # bytes of one element (of the lock cell, for a lock)
    align: int
    len: int  # number of elements (1 for a value or a lock)
    fingerprint: int  # the element type's layout fingerprint (0 for a lock)
    offset: int  # where the data starts in the segment (after the lock cell, if any)


def _label(kind, lock, type_name):
    if kind in ("RawValue", "RawArray"):
        return f"{kind}<{type_name}>"
    if kind in ("Value", "Array"):
        return f"{kind}<{type_name}, {lock}>"
    return kind


# --- layout fingerprints: TypeLayout::fingerprint (FNV-1a) for primitives and arrays ---

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def _fnv(h, data):
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _M64
    return h


def _fnv_u64(h, v):
    return _fnv(h, (v & _M64).to_bytes(8, "little"))


# (ctypes type, Rust name, ctypes name, size, align). Several Rust types can share one
# ctypes type (c_uint64 is c_ulong is c_size_t on 64-bit Linux): each is a candidate.
_PRIMITIVES = [
    (ctypes.c_int8, "i8", "c_int8", 1, 1),
    (ctypes.c_uint8, "u8", "c_uint8", 1, 1),
    (ctypes.c_int16, "i16", "c_int16", 2, 2),
    (ctypes.c_uint16, "u16", "c_uint16", 2, 2),
    (ctypes.c_int32, "i32", "c_int32", 4, 4),
    (ctypes.c_uint32, "u32", "c_uint32", 4, 4),
    (ctypes.c_int64, "i64", "c_int64", 8, 8),
    (ctypes.c_uint64, "u64", "c_uint64", 8, 8),
    (ctypes.c_float, "f32", "c_float", 4, 4),
    (ctypes.c_double, "f64", "c_double", 8, 8),
    (ctypes.c_size_t, "usize", "c_size_t", ctypes.sizeof(ctypes.c_size_t),
     ctypes.alignment(ctypes.c_size_t)),
    (ctypes.c_ssize_t, "isize", "c_ssize_t", ctypes.sizeof(ctypes.c_ssize_t),
     ctypes.alignment(ctypes.c_ssize_t)),
    (ctypes.c_char, "CChar", "c_char", 1, 1),
    (ctypes.c_wchar, "WChar", "c_wchar", 4, 4),
]


def _leaf(ctype):
    """The innermost element type of nested arrays, and the array lengths outside it."""
    lens = []
    for _ in range(64):
        if not (isinstance(ctype, type) and issubclass(ctype, ctypes.Array)):
            return ctype, lens
        lens.append(ctype._length_)
        ctype = ctype._type_
    return None, lens


def fingerprints(ctype):
    """The layout fingerprints Rust may have recorded for elements declared as ``ctype``.

    A class from ``TypeLayout::to_ctypes`` carries its struct's fingerprint as
    ``_shared_fingerprint_``; primitives and arrays of primitives are hashed here as Rust
    hashes them (``TypeLayout::fingerprint``), one candidate per Rust type that ctypes
    cannot tell apart (``c_uint64`` is ``u64`` or ``usize``). Empty if unknown (a
    hand-written Structure, an array of structs): pass ``fingerprint=`` to ``get`` then.
    """
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
        fp = vars(ctype).get("_shared_fingerprint_")
        return frozenset([fp]) if isinstance(fp, int) else frozenset()
    leaf, lens = _leaf(ctype)
    found = set()
    for ty, rust, cname, size, align in _PRIMITIVES:
        if leaf is not ty or ctypes.sizeof(ty) != size:
            continue
        h = _FNV_OFFSET
        total = size
        for n in reversed(lens):
            total *= n
        for n in lens:
            h = _fnv(h, b"array")
            h = _fnv_u64(h, total)
            h = _fnv_u64(h, align)
            h = _fnv_u64(_fnv_u64(h, 2), n)
            total //= n
        h = _fnv(h, rust.encode())
        h = _fnv_u64(h, size)
        h = _fnv_u64(h, align)
        found.add(_fnv(_fnv_u64(h, 1), cname.encode()))
    return frozenset(found)


# --- the segment ---


class _Segment(shared_memory.SharedMemory):
    def __del__(self):
        # Views from `get` keep the arena (so this segment) alive; if one is still exported
        # at interpreter exit, the mapping simply goes with the process.
        try:
            self.close()
        except (OSError, BufferError):
            pass


def _attach(name):
    """Opens the segment without letting Python's resource tracker unlink it at exit."""
    try:
        return _Segment(name=name, track=False)  # Python 3.13+
    except TypeError:
        seg = _Segment(name=name)
        from multiprocessing import resource_tracker

        resource_tracker.unregister(seg._name, "shared_memory")
        return seg


def open_arena(name):
    """Opens the named arena ``name`` (as given to ``Arena::create_segment``).

    Raises :class:`NotFoundError` if there is no such segment, :class:`InvalidArena` if it
    is not a valid arena of this format.
    """
    if not name or "/" in name or "\0" in name:
        raise NotFoundError(f"{name!r} is not a segment name (no '/', no NUL, not empty)")
    try:
        seg = _attach(name)
    except FileNotFoundError:
        raise NotFoundError(f"no shared-memory segment named {name!r}") from None
    except ValueError as e:  # an empty segment cannot be mapped
        raise InvalidArena(f"segment {name!r}: {e}") from None
    try:
        return Arena(name, seg)
    except BaseException:
        seg.close()
        raise


class Arena:
    """A named arena, mapped. Use :func:`open_arena`."""

    def __init__(self, name, segment):
        self.name = name
        self._seg = segment
        self._buf = segment.buf
        self._size = len(self._buf)
        self._check_header()

    # -- context manager --
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Unmaps the segment. Views returned by :meth:`get` must be gone first."""
        self._buf = None
        try:
            self._seg.close()
        except BufferError:
            raise ArenaError(
                "objects returned by get() are still alive: delete them before close()"
            ) from None

    def _bad(self, reason):
        return InvalidArena(f"segment {self.name!r}: {reason}")

    def _word(self, off):
        if off < 0 or off % 8 or off + 8 > self._size:
            raise self._bad(f"offset {off} is outside the segment")
        return struct.unpack_from("<Q", self._buf, off)[0]

    def _check_header(self):
        buf = self._buf
        if buf is None:
            raise ArenaError(f"arena {self.name!r} is closed")
        if self._size < HEAP_START + 2 * _MIN_BLOCK + _GRAIN:
            raise self._bad(f"only {self._size} bytes: too small to be an arena")
        magic, version, _, capacity, ident, pid, _, _ = _HEADER.unpack_from(buf, 0)
        if magic != MAGIC:
            raise self._bad(f"magic number {magic:#018x} is not an arena's")
        if version != VERSION:
            raise self._bad(f"format version {version}, this module reads {VERSION}")
        if capacity != self._size:
            raise self._bad(
                f"header says {capacity} bytes but the segment has {self._size} (truncated?)"
            )
        start, top, committed = (self._word(o) for o in (_START, _TOP, _COMMITTED))
        if (start != HEAP_START or top < start or top % _GRAIN or top > committed
                or committed > self._size):
            raise self._bad(
                f"heap bounds start {start}, top {top}, reserved {committed} "
                f"do not fit {self._size} bytes"
            )
        self.capacity, self.id, self.creator_pid = capacity, ident, pid
        return start, top

    # -- blocks (arena/heap.rs, arena/tags.rs) --
    def _canary(self, b):
        return (((self.id ^ b) * 0x9E3779B97F4A7C15) & _M64) >> 32

    def _directory_block(self, payload, start, top, what):
        """The payload capacity of the used, directory-owned block at ``payload``."""
        b = payload - _HDR
        if b < start or b + _MIN_BLOCK > top:
            raise self._bad(f"{what} at offset {payload} is outside the heap [{start}, {top})")
        if b % _GRAIN:
            raise self._bad(f"{what} at offset {payload} is not on a block boundary")
        w = self._word(b)
        size = w & ~_FLAGS
        if size < _MIN_BLOCK or b + size > top:
            raise self._bad(f"{what}: block at {b} has impossible size {size}")
        if not w & _USED:
            raise self._bad(f"{what} at offset {payload} is a free block")
        tag = self._word(b + 8)
        if tag >> 32 != self._canary(b):
            raise self._bad(f"{what}: no block starts at offset {payload}")
        if tag & 0xFFFFFFFF != _REGISTRY_OWNER:
            raise self._bad(f"{what} at offset {payload} is not the directory's")
        return size - _HDR

    def _walk(self):
        start, top = self._check_header()
        if self._word(_REBUILDING):
            raise self._bad("its allocator is being rebuilt after a crash")
        # Each entry has a block of its own, so no more than this many fit in the heap;
        # a repeated offset is a loop, reported at once.
        budget = (top - start) // _ENTRY_BLOCK + 1
        at = self._word(_REGISTRY)
        seen = set()
        order = []
        while at:
            if at in seen or len(order) >= budget:
                raise self._bad("the object directory loops")
            seen.add(at)
            room = self._directory_block(at, start, top, "directory entry")
            if room < _ENTRY.size:
                raise self._bad(f"directory entry at {at} is too small")
            order.append(at)
            at = _ENTRY.unpack_from(self._buf, at)[0]
        # Only a walk that ended is turned into objects.
        return [self._entry(at, start, top) for at in order]

    def _entry(self, at, start, top):
        (_, obj, n, fp, size, align, data_at, code, name_len, type_len, _, type_name,
         name) = _ENTRY.unpack_from(self._buf, at)
        if name_len > len(name) or type_len > len(type_name) or name_len == 0:
            raise self._bad(f"directory entry at {at} has a bad name length")
        name = name[:name_len].decode("utf-8", "replace")
        type_name = type_name[:type_len].decode("utf-8", "replace")
        kind, lock = _KINDS.get(code, (f"unknown kind {code}", None))
        if align == 0 or align & (align - 1) or align > 4096:
            raise self._bad(f"object {name!r} has impossible alignment {align}")
        want_at = -(-_LOCK_CELL // max(align, 8)) * max(align, 8) if kind in (
            "Value", "Array") else 0
        room = self._directory_block(obj, start, top, f"object {name!r}")
        if (code in _KINDS and data_at != want_at) or obj % max(align, 8) \
                or data_at + n * size > room:
            raise self._bad(f"object {name!r} does not fit its block")
        return ObjectInfo(name, kind, lock, type_name, _label(kind, lock, type_name),
                          size, align, n, fp, obj + data_at)

    def _retrying(self, f):
        for attempt in range(_ATTEMPTS):
            try:
                return f()
            except InvalidArena:
                if attempt + 1 == _ATTEMPTS:
                    raise
                time.sleep(0.001)

    # -- the public part --
    def objects(self):
        """Every named object, newest first, as :class:`ObjectInfo`."""
        return self._retrying(self._walk)

    def names(self):
        """The names of the named objects, newest first."""
        return [o.name for o in self.objects()]

    def info(self, name):
        """The :class:`ObjectInfo` of ``name``; :class:`NotFoundError` if none."""
        for o in self.objects():
            if o.name == name:
                return o
        raise NotFoundError(f"arena {self.name!r} has no object named {name!r}")

    def get(self, name, ctype, *, kind=None, fingerprint=None):
        """The object ``name`` as a ``ctypes`` object over the shared bytes.

        ``ctype`` is the element type: ``ctypes.c_uint64``, ``(ctypes.c_int32 * 3)``, or a
        class from the declaration ``TypeLayout::to_ctypes`` generates. A value comes back
        as a ``ctype``; an array as ``ctype * len``. Checked first: the kind (``kind=``
        "RawValue", "Value", "RawArray" or "Array" if given; locks are refused), that
        ``ctypes.sizeof(ctype)`` is the element size, and that the stored layout
        fingerprint is ``ctype``'s (see :func:`fingerprints`; ``fingerprint=`` gives it
        when ``ctype`` cannot: a hand-written Structure, an array of structs). Raises
        :class:`NotFoundError`, :class:`KindMismatch` or :class:`LayoutMismatch`.
        """
        o = self.info(name)
        if o.kind not in ("RawValue", "RawArray", "Value", "Array"):
            raise KindMismatch(
                f"object {name!r} is a {o.label}: Python cannot take a Rust lock, "
                "and there is nothing else in it to map"
            )
        if kind is not None and kind != o.kind:
            raise KindMismatch(f"object {name!r} is a {o.label}, not a {kind}")
        if ctypes.sizeof(ctype) != o.size:
            raise LayoutMismatch(
                f"object {name!r} is a {o.label} of {o.size}-byte elements; "
                f"{ctype.__name__} has {ctypes.sizeof(ctype)} bytes"
            )
        expected = fingerprints(ctype) if fingerprint is None else frozenset([fingerprint])
        if not expected:
            raise LayoutMismatch(
                f"cannot check {ctype.__name__} against object {name!r} ({o.label}): declare "
                "it with the classes TypeLayout::to_ctypes generates, or pass fingerprint="
            )
        if o.fingerprint not in expected:
            theirs = ", ".join(f"{f:#018x}" for f in sorted(expected))
            raise LayoutMismatch(
                f"object {name!r} is a {o.label} (layout fingerprint {o.fingerprint:#018x}); "
                f"{ctype.__name__} has fingerprint {theirs}"
            )
        whole = ctype * o.len if o.kind in ("RawArray", "Array") else ctype
        view = whole.from_buffer(self._buf, o.offset)
        view._shared_arena = self  # the mapping lives as long as the view
        return view
