use shared_runtime::SharedStruct;

#[derive(Clone, Copy)]
struct Plain(u8);

// Every mistake is reported in one compile.
#[derive(SharedStruct, Clone, Copy)]
#[repr(packed)]
struct Everything {
    on: bool,
    next: *mut Everything,
    initial: char,
    plain: Plain,
}

fn main() {}
