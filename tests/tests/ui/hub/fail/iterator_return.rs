pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn numbers(&self) -> impl Iterator<Item = u32> {
        0..3
    }
}

fn main() {}
