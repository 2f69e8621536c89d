pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(authorize(role = "admin"))]
    fn audit(&self) {}
}

fn main() {}
