use std::rc::Rc;

use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone)]
#[repr(C)]
struct Cached {
    value: Rc<u64>,
}

fn main() {}
