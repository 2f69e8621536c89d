pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(rename = "Helper")]
    fn helper(&self) {}
}

fn main() {}
