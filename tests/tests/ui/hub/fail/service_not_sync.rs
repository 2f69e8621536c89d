use std::cell::Cell;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn count(&self, #[hub(service)] counter: &Cell<u32>) -> u32 {
        counter.get()
    }
}

fn main() {}
