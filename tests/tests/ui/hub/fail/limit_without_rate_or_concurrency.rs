pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(limit(per = "user"))]
    pub fn send(&self) {}
}

fn main() {}
