pub struct Db;
pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn query(&self, #[hub(service = primary)] db: &Db) {
        let _ = db;
    }
}

fn main() {}
