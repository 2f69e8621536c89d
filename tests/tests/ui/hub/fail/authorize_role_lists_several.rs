pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(authorize(role = "admin, ops"))]
    pub fn audit(&self) {}
}

fn main() {}
