pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(limit(concurrency = 1, per = "team"))]
    pub fn ping(&self) -> u32 {
        1
    }

    #[hub(limit(concurrency = 0))]
    pub fn pong(&self) -> u32 {
        1
    }

    #[hub(limit)]
    pub fn bare(&self) -> u32 {
        1
    }
}

fn main() {}
