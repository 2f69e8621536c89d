pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(limit(concurrency = 2, burst = 4))]
    pub fn send(&self) {}
}

fn main() {}
