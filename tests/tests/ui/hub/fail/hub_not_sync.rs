use std::cell::Cell;

pub struct MyHub {
    count: Cell<u32>,
}

#[hubs::hub]
impl MyHub {
    pub fn count(&self) -> u32 {
        self.count.get()
    }
}

fn main() {}
