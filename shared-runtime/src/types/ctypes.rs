//! Rendering a layout as Python: the `ctypes` declaration of the same memory.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use crate::types::layout::{FieldLayout, LayoutKind, TypeLayout};

/// Names a Python class cannot take: keywords, and `ctypes`, which the snippet imports.
const RESERVED: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "ctypes",
];

impl TypeLayout {
    /// A complete Python snippet declaring this layout with `ctypes`: `import ctypes`, then
    /// one `ctypes.Structure` class per struct it contains, nested structs first, each once.
    /// For a struct the last class is the struct itself; for an array or a primitive,
    /// [`ctypes_type`](Self::ctypes_type) is the expression to use after the snippet.
    ///
    /// Every class sets `_pack_ = 1` and spells out each gap between fields, and the padding
    /// at the end, as a `("_padN", ctypes.c_uint8 * k)` field. So `ctypes.sizeof` and every
    /// field's `offset` equal Rust's exactly, whatever alignment rules the Python side uses
    /// (Python before 3.14 has no way to state a struct's alignment). The classes themselves
    /// have alignment 1: map them over memory Rust allocated (whose offsets are aligned), as
    /// in `Sample.from_buffer(shm.buf, offset)`.
    ///
    /// Every class also carries `_shared_fingerprint_`, the struct's
    /// [`fingerprint`](Self::fingerprint): `python/sharedctypes_rs.py` compares it with the
    /// one an arena's directory stores before it maps a named object with the class.
    ///
    /// Two different structs with the same name get distinct class names (`Point`,
    /// `Point_2`); a name Python reserves gets a trailing `_`; a generic struct's class is
    /// named for its instantiation (`Stamped<u32>` is `Stamped_u32`). A tuple struct's fields are
    /// named `"0"`, `"1"`, ... (read them with `getattr(obj, "0")`).
    ///
    /// ```
    /// use shared_runtime::{SharedStruct, SharedType};
    ///
    /// #[derive(SharedStruct, Clone, Copy)]
    /// #[repr(C)]
    /// struct Sample {
    ///     channel: u8,
    ///     value: f64,
    /// }
    ///
    /// #[derive(SharedStruct, Clone, Copy)]
    /// #[repr(C)]
    /// struct Batch {
    ///     samples: [Sample; 4],
    ///     count: u16,
    /// }
    ///
    /// assert_eq!(
    ///     Batch::LAYOUT.to_ctypes(),
    ///     format!(
    ///         r#"import ctypes
    ///
    ///
    /// class Sample(ctypes.Structure):
    ///     _pack_ = 1
    ///     _layout_ = "ms"
    ///     _shared_fingerprint_ = 0x{:016x}
    ///     _fields_ = [
    ///         ("channel", ctypes.c_uint8),
    ///         ("_pad0", ctypes.c_uint8 * 7),
    ///         ("value", ctypes.c_double),
    ///     ]
    ///
    ///
    /// class Batch(ctypes.Structure):
    ///     _pack_ = 1
    ///     _layout_ = "ms"
    ///     _shared_fingerprint_ = 0x{:016x}
    ///     _fields_ = [
    ///         ("samples", (Sample * 4)),
    ///         ("count", ctypes.c_uint16),
    ///         ("_pad0", ctypes.c_uint8 * 6),
    ///     ]
    /// "#,
    ///         Sample::LAYOUT.fingerprint(),
    ///         Batch::LAYOUT.fingerprint()
    ///     )
    /// );
    ///
    /// // Arrays and primitives need only the classes of the structs they contain.
    /// assert_eq!(<[f64; 2] as SharedType>::LAYOUT.to_ctypes(), "import ctypes\n");
    /// ```
    pub fn to_ctypes(&self) -> String {
        let mut classes = Classes::default();
        classes.python_type(self);
        format!("import ctypes\n{}", classes.source)
    }
}

/// The classes declared so far, by layout.
#[derive(Default)]
struct Classes {
    source: String,
    /// A struct's fingerprint -> its class name.
    declared: HashMap<u64, String>,
    names: HashSet<String>,
}

impl Classes {
    /// The Python expression for `layout`, declaring the classes it needs first.
    fn python_type(&mut self, layout: &TypeLayout) -> String {
        match layout.kind {
            LayoutKind::Primitive(p) => format!("ctypes.{}", p.ctypes_name()),
            LayoutKind::Array { elem, len } => format!("({} * {len})", self.python_type(elem)),
            LayoutKind::Struct { fields } => self.declare(layout, fields),
        }
    }

    fn declare(&mut self, layout: &TypeLayout, fields: &[FieldLayout]) -> String {
        let fingerprint = layout.fingerprint();
        if let Some(name) = self.declared.get(&fingerprint) {
            return name.clone();
        }
        let mut fields: Vec<&FieldLayout> = fields.iter().collect();
        fields.sort_by_key(|f| f.offset);
        let types: Vec<String> = fields.iter().map(|f| self.python_type(f.ty)).collect();
        let name = self.class_name(layout.name);

        let mut padding = Padding::new(&fields);
        let mut body = String::new();
        let mut end = 0;
        for (field, ty) in fields.iter().zip(&types) {
            // A gap before the field (fields never overlap in a derived layout; if a
            // hand-written one says they do, the gap is taken as zero).
            padding.fill(&mut body, field.offset.saturating_sub(end));
            let _ = writeln!(
                body,
                "        (\"{}\", {ty}),",
                python_field_name(field.name)
            );
            end = end.max(field.offset + field.ty.size);
        }
        padding.fill(&mut body, layout.size.saturating_sub(end));

        let _ = write!(
            self.source,
            "\n\nclass {name}(ctypes.Structure):\n    _pack_ = 1\n    _layout_ = \"ms\"\n    \
             _shared_fingerprint_ = {fingerprint:#018x}\n    _fields_ = [\n{body}    ]\n"
        );
        self.declared.insert(fingerprint, name.clone());
        name
    }

    /// `name`, or `name_2`, `name_3`, ... if a different struct already took it.
    fn class_name(&mut self, name: &str) -> String {
        let name = &python_identifier(name);
        let base = if RESERVED.contains(&name.as_str()) {
            format!("{name}_")
        } else {
            name.to_string()
        };
        let mut candidate = base.clone();
        let mut n = 2;
        while self.names.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        self.names.insert(candidate.clone());
        candidate
    }
}

/// A generic struct's layout name as a Python identifier: `Stamped<u32>` -> `Stamped_u32`,
/// `Grid<[f32; 3], 4>` -> `Grid_f32_3_4` (each run of other characters becomes one `_`).
fn python_identifier(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.len() > 1 && out.ends_with('_') && !name.ends_with('_') {
        out.pop();
    }
    out
}

/// Field names a `ctypes.Structure` cannot take, because ctypes gives them a meaning or
/// the class needs them: they get a trailing `_` (as Python keywords do for class names).
const STRUCTURE_NAMES: &[&str] = &[
    "_fields_",
    "_anonymous_",
    "_pack_",
    "_align_",
    "_layout_",
    "_swappedbytes_",
    "_objects",
    "from_buffer",
    "from_buffer_copy",
    "from_address",
    "from_param",
    "in_dll",
    "_shared_fingerprint_",
];

/// The Python attribute name for a Rust field.
fn python_field_name(name: &str) -> String {
    let dunder = name.len() > 4 && name.starts_with("__") && name.ends_with("__");
    if dunder || name.starts_with("_b_") || STRUCTURE_NAMES.contains(&name) {
        format!("{name}_")
    } else {
        name.to_string()
    }
}

/// Names padding fields `_pad0`, `_pad1`, ..., skipping any name a real field has.
struct Padding<'a> {
    fields: &'a [&'a FieldLayout],
    next: usize,
}

impl<'a> Padding<'a> {
    fn new(fields: &'a [&'a FieldLayout]) -> Self {
        Padding { fields, next: 0 }
    }

    /// Writes a padding field of `bytes` bytes, if `bytes` is not zero.
    fn fill(&mut self, body: &mut String, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let name = loop {
            let name = format!("_pad{}", self.next);
            self.next += 1;
            if !self.fields.iter().any(|f| f.name == name) {
                break name;
            }
        };
        let _ = writeln!(body, "        (\"{name}\", ctypes.c_uint8 * {bytes}),");
    }
}
