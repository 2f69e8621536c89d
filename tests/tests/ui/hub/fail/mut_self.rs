pub struct MyHub {
    count: u32,
}

#[hubs::hub]
impl MyHub {
    pub fn bump(&mut self) -> u32 {
        self.count += 1;
        self.count
    }
}

fn main() {}
