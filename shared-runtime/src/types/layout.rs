//! Type layouts: what a shared type looks like in memory, as data.
//!
//! A [`TypeLayout`] is emitted for every [`SharedType`](crate::SharedType). It renders the
//! equivalent Python `ctypes` declaration and hashes to a stable 64-bit fingerprint that is
//! stored beside named objects, so that a process attaching with a different idea of the
//! type is refused.

/// The primitive types of the typecode table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Primitive {
    /// `i8`, typecode `'b'`.
    I8,
    /// `u8`, typecode `'B'`.
    U8,
    /// `i16`, typecode `'h'`.
    I16,
    /// `u16`, typecode `'H'`.
    U16,
    /// `i32`, typecode `'i'`.
    I32,
    /// `u32`, typecode `'I'`.
    U32,
    /// `i64`, typecodes `'q'` and (on 64-bit Linux) `'l'`.
    I64,
    /// `u64`, typecodes `'Q'` and (on 64-bit Linux) `'L'`.
    U64,
    /// `f32`, typecode `'f'`.
    F32,
    /// `f64`, typecode `'d'`.
    F64,
    /// `usize`, ctypes' `c_size_t`: as wide as a pointer, so its layout (and fingerprint)
    /// records this program's width, and a program of another width is refused at open.
    Usize,
    /// `isize`, ctypes' `c_ssize_t`; pointer-wide, like [`Usize`](Primitive::Usize).
    Isize,
    /// [`CChar`](crate::CChar), typecode `'c'`.
    CChar,
    /// [`WChar`](crate::WChar), typecode `'u'`.
    WChar,
}

impl Primitive {
    /// The Rust name of the type.
    pub const fn rust_name(self) -> &'static str {
        match self {
            Primitive::I8 => "i8",
            Primitive::U8 => "u8",
            Primitive::I16 => "i16",
            Primitive::U16 => "u16",
            Primitive::I32 => "i32",
            Primitive::U32 => "u32",
            Primitive::I64 => "i64",
            Primitive::U64 => "u64",
            Primitive::F32 => "f32",
            Primitive::F64 => "f64",
            Primitive::Usize => "usize",
            Primitive::Isize => "isize",
            Primitive::CChar => "CChar",
            Primitive::WChar => "WChar",
        }
    }

    /// The name of the equivalent `ctypes` type, e.g. `c_double`.
    ///
    /// ```
    /// use shared_runtime::layout::Primitive;
    /// assert_eq!(Primitive::F64.ctypes_name(), "c_double");
    /// ```
    pub const fn ctypes_name(self) -> &'static str {
        match self {
            Primitive::I8 => "c_int8",
            Primitive::U8 => "c_uint8",
            Primitive::I16 => "c_int16",
            Primitive::U16 => "c_uint16",
            Primitive::I32 => "c_int32",
            Primitive::U32 => "c_uint32",
            Primitive::I64 => "c_int64",
            Primitive::U64 => "c_uint64",
            Primitive::F32 => "c_float",
            Primitive::F64 => "c_double",
            Primitive::Usize => "c_size_t",
            Primitive::Isize => "c_ssize_t",
            Primitive::CChar => "c_char",
            Primitive::WChar => "c_wchar",
        }
    }

    const fn align(self) -> usize {
        match self {
            Primitive::I8 => std::mem::align_of::<i8>(),
            Primitive::U8 | Primitive::CChar => std::mem::align_of::<u8>(),
            Primitive::I16 => std::mem::align_of::<i16>(),
            Primitive::U16 => std::mem::align_of::<u16>(),
            Primitive::I32 => std::mem::align_of::<i32>(),
            Primitive::U32 | Primitive::WChar => std::mem::align_of::<u32>(),
            Primitive::I64 => std::mem::align_of::<i64>(),
            Primitive::U64 => std::mem::align_of::<u64>(),
            Primitive::F32 => std::mem::align_of::<f32>(),
            Primitive::F64 => std::mem::align_of::<f64>(),
            Primitive::Usize => std::mem::align_of::<usize>(),
            Primitive::Isize => std::mem::align_of::<isize>(),
        }
    }

    const fn size(self) -> usize {
        match self {
            Primitive::I8 | Primitive::U8 | Primitive::CChar => 1,
            Primitive::I16 | Primitive::U16 => 2,
            Primitive::I32 | Primitive::U32 | Primitive::F32 | Primitive::WChar => 4,
            Primitive::I64 | Primitive::U64 | Primitive::F64 => 8,
            Primitive::Usize => std::mem::size_of::<usize>(),
            Primitive::Isize => std::mem::size_of::<isize>(),
        }
    }
}

/// What kind of type a layout describes.
#[derive(Debug, Clone, Copy)]
pub enum LayoutKind {
    /// A primitive of the typecode table.
    Primitive(Primitive),
    /// `[elem; len]`.
    Array {
        /// The element's layout.
        elem: &'static TypeLayout,
        /// The number of elements.
        len: usize,
    },
    /// A `#[repr(C)]` struct.
    Struct {
        /// Its fields, in declaration (and offset) order.
        fields: &'static [FieldLayout],
    },
}

/// One field of a struct layout.
#[derive(Debug, Clone, Copy)]
pub struct FieldLayout {
    /// The field's name.
    pub name: &'static str,
    /// Its byte offset in the struct.
    pub offset: usize,
    /// Its type's layout.
    pub ty: &'static TypeLayout,
}

/// The memory layout of a shared type: name, size, alignment and structure.
///
/// ```
/// use shared_runtime::SharedType;
///
/// let l = <[u16; 4] as SharedType>::LAYOUT;
/// assert_eq!((l.size, l.align), (8, 2));
/// assert_eq!(l.ctypes_type(), "(ctypes.c_uint16 * 4)");
/// assert_ne!(l.fingerprint(), <[i16; 4] as SharedType>::LAYOUT.fingerprint());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TypeLayout {
    /// The type's name (`"array"` for arrays).
    pub name: &'static str,
    /// `size_of` the type.
    pub size: usize,
    /// `align_of` the type.
    pub align: usize,
    /// Its structure.
    pub kind: LayoutKind,
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) const fn fnv_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

pub(crate) const fn fnv_u64(h: u64, v: u64) -> u64 {
    fnv_bytes(h, &v.to_le_bytes())
}

impl TypeLayout {
    /// The layout of a primitive.
    pub const fn primitive(p: Primitive) -> TypeLayout {
        TypeLayout {
            name: p.rust_name(),
            size: p.size(),
            align: p.align(),
            kind: LayoutKind::Primitive(p),
        }
    }

    /// A stable 64-bit hash (FNV-1a) of the layout: names, sizes, alignments, field offsets
    /// and primitive kinds. Equal layouts hash equal in every build and process.
    pub const fn fingerprint(&self) -> u64 {
        self.hash_into(FNV_OFFSET)
    }

    /// Arrays in a loop (an array of arrays nests as deep as its type, and a const
    /// evaluation has a bounded stack); structs recurse once per level of struct nesting.
    const fn hash_into(&self, h: u64) -> u64 {
        let mut layout = self;
        let mut h = h;
        loop {
            h = fnv_bytes(h, layout.name.as_bytes());
            h = fnv_u64(h, layout.size as u64);
            h = fnv_u64(h, layout.align as u64);
            match layout.kind {
                LayoutKind::Array { elem, len } => {
                    h = fnv_u64(fnv_u64(h, 2), len as u64);
                    layout = elem;
                }
                _ => break,
            }
        }
        match layout.kind {
            LayoutKind::Primitive(p) => fnv_bytes(fnv_u64(h, 1), p.ctypes_name().as_bytes()),
            LayoutKind::Array { .. } => h,
            LayoutKind::Struct { fields } => {
                h = fnv_u64(fnv_u64(h, 3), fields.len() as u64);
                let mut i = 0;
                while i < fields.len() {
                    h = fnv_bytes(h, fields[i].name.as_bytes());
                    h = fnv_u64(h, fields[i].offset as u64);
                    h = fields[i].ty.hash_into(h);
                    i += 1;
                }
                h
            }
        }
    }

    /// Whether the type has padding bytes (bytes that belong to no field).
    pub const fn has_padding(&self) -> bool {
        // An array has the padding of its innermost element: a loop, not recursion.
        let mut layout = self;
        while let LayoutKind::Array { elem, .. } = layout.kind {
            layout = elem;
        }
        match layout.kind {
            LayoutKind::Primitive(_) | LayoutKind::Array { .. } => false,
            LayoutKind::Struct { fields } => {
                let mut covered = 0;
                let mut i = 0;
                while i < fields.len() {
                    if fields[i].ty.has_padding() || fields[i].offset != covered {
                        return true;
                    }
                    covered += fields[i].ty.size;
                    i += 1;
                }
                covered != layout.size
            }
        }
    }

    /// The Python expression for this type in `ctypes`, e.g. `ctypes.c_double`,
    /// `(ctypes.c_int32 * 3)` or a struct's class name.
    pub fn ctypes_type(&self) -> String {
        match self.kind {
            LayoutKind::Primitive(p) => format!("ctypes.{}", p.ctypes_name()),
            LayoutKind::Array { elem, len } => format!("({} * {len})", elem.ctypes_type()),
            LayoutKind::Struct { .. } => self.name.to_string(),
        }
    }
}
