pub struct MyHub;

#[hubs::hub(authorize(roles = "admin, "))]
impl MyHub {
    pub fn secret(&self) -> u32 {
        1
    }
}

fn main() {}
