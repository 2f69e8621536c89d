pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub unsafe fn danger(&self) -> u32 {
        1
    }
}

fn main() {}
