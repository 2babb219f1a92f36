//! Python's view of the same layouts: `to_ctypes` run through `python3`.

use super::*;

/// Runs `script` with `python3`, or returns `None` (and says so) if there is no `python3`.
fn python(script: &str) -> Option<String> {
    crate::common::python::run(script, None)
}

/// The Python class name `to_ctypes` gives a top-level struct (the last class declared).
fn class_name(snippet: &str) -> &str {
    let line = snippet
        .lines()
        .rev()
        .find(|l| l.starts_with("class "))
        .unwrap();
    &line["class ".len()..line.find('(').unwrap()]
}

/// `ctypes.sizeof` and every field's offset, as Python computes them from `to_ctypes`,
/// equal Rust's.
fn assert_python_agrees(layout: &TypeLayout) -> bool {
    let snippet = layout.to_ctypes();
    let class = class_name(&snippet);
    let names = field_names(layout);
    let script = format!(
        "{snippet}\n\
         print(ctypes.sizeof({class}))\n\
         for name in {names:?}:\n    print(name, getattr({class}, name).offset)\n"
    );
    let Some(out) = python(&script) else {
        return false;
    };
    let mut expected = format!("{}\n", layout.size);
    for name in &names {
        expected += &format!("{name} {}\n", field(layout, name).offset);
    }
    assert_eq!(
        out, expected,
        "Python disagrees about {}:\n{snippet}",
        layout.name
    );
    true
}

#[test]
fn python_ctypes_layouts_match() {
    let layouts = [
        Point::LAYOUT,
        Padded::LAYOUT,
        Foo::LAYOUT,
        Shape::LAYOUT,
        Scene::LAYOUT,
        Aligned::LAYOUT,
        AlignedTwice::LAYOUT,
        Rgb::LAYOUT,
        Keywords::LAYOUT,
        python_names::None::LAYOUT,
        python_names::ctypes::LAYOUT,
        TwoPoints::LAYOUT,
        ThroughFacade::LAYOUT,
        Wide::LAYOUT,
        no_prelude::Bare::LAYOUT,
        <super::generic::Stamped<u32> as SharedType>::LAYOUT,
        <super::generic::Stamped<[super::generic::Stamped<u8>; 2]> as SharedType>::LAYOUT,
        <super::generic::Grid<f32, 3> as SharedType>::LAYOUT,
        super::generic::Slot::LAYOUT,
        super::generic::Meters::LAYOUT,
    ];
    for layout in &layouts {
        if !assert_python_agrees(layout) {
            return;
        }
    }
}

#[test]
fn python_reads_what_rust_stored() {
    let value = scene();
    let bytes = stored_bytes(&value, 0);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        "{}\n\
         s = Scene.from_buffer_copy(bytes.fromhex('{hex}'))\n\
         sh = s.shapes[1]\n\
         print(sh.id, sh.origin.x, sh.origin.y, sh.corners[1].x, sh.corners[1].y)\n\
         print(sh.label, sh.wide, sh.tail, s.extra[2].a, s.extra[2].b, s.extra[2].c, s.flag)\n",
        Scene::LAYOUT.to_ctypes()
    );
    let Some(out) = python(&script) else { return };
    assert_eq!(
        out, "48879 2.0 -2.0 3.0 2.0\nb'abc' é 9 -1 0.5 -9223372036854775808 1\n",
        "from {script}"
    );
}

#[test]
fn ctypes_snippets_name_classes_and_padding() {
    let py = Keywords::LAYOUT.to_ctypes();
    assert!(py.contains("(\"_pad0\", ctypes.c_uint64)"), "{py}");
    assert!(py.contains("(\"_pad1\", ctypes.c_uint8 * 3)"), "{py}");
    assert!(py.contains("(\"_pad2\", ctypes.c_uint8 * 7)"), "{py}");
    let none = python_names::None::LAYOUT.to_ctypes();
    assert!(none.contains("class None_(ctypes.Structure):"), "{none}");
    let module = python_names::ctypes::LAYOUT.to_ctypes();
    assert!(
        module.contains("class ctypes_(ctypes.Structure):"),
        "{module}"
    );
    // Two different structs named Point get two classes; equal layouts share one.
    let two = TwoPoints::LAYOUT.to_ctypes();
    assert_eq!(two.matches("class Point(").count(), 1, "{two}");
    assert_eq!(two.matches("class Point_2(").count(), 1, "{two}");
    assert!(
        two.contains("(\"b\", Point_2),\n        (\"c\", Point),"),
        "{two}"
    );
    let scene = Scene::LAYOUT.to_ctypes();
    assert_eq!(scene.matches("class ").count(), 4, "{scene}");
}

/// Field names that `ctypes.Structure` gives a meaning to are renamed with a trailing `_`,
/// so the class can be created and `from_buffer` still works.
#[derive(SharedStruct, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct StructureWords {
    _fields_: u32,
    from_buffer: f64,
    __init__: u8,
    plain: u16,
}

#[test]
fn structure_attribute_names_are_renamed() {
    let snippet = StructureWords::LAYOUT.to_ctypes();
    for renamed in [
        "\"_fields__\"",
        "\"from_buffer_\"",
        "\"__init___\"",
        "\"plain\"",
    ] {
        assert!(
            snippet.contains(renamed),
            "{renamed} missing from:\n{snippet}"
        );
    }
    let script = format!(
        "{snippet}\n\
         buf = bytearray(ctypes.sizeof(StructureWords))\n\
         s = StructureWords.from_buffer(buf)\n\
         print(ctypes.sizeof(StructureWords), StructureWords.from_buffer_.offset, \
         StructureWords.plain.offset)\n"
    );
    let Some(out) = python(&script) else { return };
    let expected = format!(
        "{} {} {}\n",
        size_of::<StructureWords>(),
        offset_of!(StructureWords, from_buffer),
        offset_of!(StructureWords, plain)
    );
    assert_eq!(out, expected, "{snippet}");
}
