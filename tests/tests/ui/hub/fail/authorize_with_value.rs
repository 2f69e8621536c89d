pub struct MyHub;

#[hubs::hub(authorize = "admin")]
impl MyHub {
    pub fn audit(&self) {}
}

fn main() {}
