use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(C)]
enum State {
    Idle,
    Busy,
}

fn main() {}
