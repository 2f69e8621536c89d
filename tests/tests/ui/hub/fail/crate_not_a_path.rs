pub struct MyHub;

#[hubs::hub(crate = "my hubs")]
impl MyHub {
    pub fn ping(&self) {}
}

fn main() {}
