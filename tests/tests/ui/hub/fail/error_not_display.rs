#[derive(Debug)]
pub struct Oops;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn try_it(&self) -> Result<u32, Oops> {
        Err(Oops)
    }
}

fn main() {}
