use hubs::Context;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    async fn on_connected(&self, cx: &Context<Self>, greeting: String) {
        let _ = (cx, greeting);
    }
}

fn main() {}
