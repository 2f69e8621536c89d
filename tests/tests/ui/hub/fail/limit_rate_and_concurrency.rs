pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(limit(rate = "10/s", concurrency = 2))]
    pub fn ping(&self) -> u32 {
        1
    }
}

fn main() {}
