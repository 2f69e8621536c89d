pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(limit(rate = "ten a second"))]
    pub fn ping(&self) -> u32 {
        1
    }
}

fn main() {}
