pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(skip, rename = "Helper")]
    pub fn helper(&self) {}
}

fn main() {}
