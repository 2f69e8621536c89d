pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn new() -> Self {
        MyHub
    }
}

fn main() {}
