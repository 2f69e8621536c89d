pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(authorize(policy = " "))]
    pub fn audit(&self) {}
}

fn main() {}
