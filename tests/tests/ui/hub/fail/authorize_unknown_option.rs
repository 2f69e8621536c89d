pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(authorize(group = "admins"))]
    pub fn secret(&self) -> u32 {
        1
    }
}

fn main() {}
