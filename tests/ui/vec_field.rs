use shared_runtime::SharedStruct;

#[derive(SharedStruct, Clone)]
#[repr(C)]
struct Samples {
    values: Vec<f64>,
}

fn main() {}
