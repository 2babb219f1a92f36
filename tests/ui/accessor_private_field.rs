mod bank {
    #[derive(shared_runtime::SharedStruct, Clone, Copy)]
    #[repr(C)]
    pub struct Account {
        pub id: u32,
        balance: i64,
    }

    pub fn open() -> Account {
        Account { id: 1, balance: 0 }
    }
}

// A private field keeps the accessor trait private to the struct's module.
use bank::AccountFields;

fn main() {
    let a = shared_runtime::Value::new(bank::open()).unwrap();
    a.set_balance(1_000_000);
}
