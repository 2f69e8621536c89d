pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn ping(&self) {}
}

#[hubs::hub]
impl MyHub {
    pub fn pong(&self) {}
}

fn main() {}
