mod shapes {
    #[derive(shared_runtime::SharedStruct, Clone, Copy)]
    #[repr(C)]
    pub struct Point {
        pub x: f64,
        pub y: f64,
    }
}

fn main() {
    let p = shared_runtime::Value::new(shapes::Point { x: 1.0, y: 2.0 }).unwrap();
    // The accessors are methods of the trait `shapes::PointFields`, which is not imported.
    let _ = p.x();
}
