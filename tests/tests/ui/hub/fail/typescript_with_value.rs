pub struct MyHub;

#[hubs::hub(typescript = true)]
impl MyHub {
    pub fn ping(&self) {}
}

fn main() {}
