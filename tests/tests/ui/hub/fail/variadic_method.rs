pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub unsafe extern "C" fn sum(&self, _count: u32, _rest: ...) {}
}

fn main() {}
