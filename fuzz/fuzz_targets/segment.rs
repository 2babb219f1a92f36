//! Fuzz target `segment`: opens arbitrary bytes as a named arena and runs allocator and
//! directory operations on it. The input format and the operations are in the shared
//! driver, `tests/common/segment_driver.rs`, which `tests/fuzz_corpus.rs` replays on stable.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/segment_driver.rs"]
mod driver;

static SEGMENT: OnceLock<driver::Segment> = OnceLock::new();

fuzz_target!(
    init: {
        SEGMENT.get_or_init(driver::Segment::new);
        // libfuzzer-sys's hook aborts the process, so no destructor runs: remove the
        // segment file first. (A crash by signal leaves it behind; the next
        // `Segment::new` removes files of dead processes.)
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(segment) = SEGMENT.get() {
                segment.unlink();
            }
            abort(info);
        }));
    },
    |data: &[u8]| {
        let segment = SEGMENT.get_or_init(driver::Segment::new);
        std::hint::black_box(segment.run(data));
    }
);
