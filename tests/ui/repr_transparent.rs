use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone, Copy)]
#[repr(transparent)]
struct Meters(f64);

fn main() {}
