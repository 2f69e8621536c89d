pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(limit(rate = "10/s", window = 3))]
    pub fn send(&self) {}
}

fn main() {}
