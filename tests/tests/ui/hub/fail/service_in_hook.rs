use hubs::Context;

pub struct Db;
pub struct MyHub;

#[hubs::hub]
impl MyHub {
    async fn on_connected(&self, cx: &Context<Self>, #[hub(service)] db: &Db) {
        let _ = (cx, db);
    }
}

fn main() {}
