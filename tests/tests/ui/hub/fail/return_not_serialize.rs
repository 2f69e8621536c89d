pub struct NotData;
pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn give(&self) -> NotData {
        NotData
    }
}

fn main() {}
