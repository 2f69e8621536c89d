use hubs::Context;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    async fn on_disconnected(&self, cx: &Context<Self>, error: Option<String>) {
        let _ = (cx, error);
    }
}

fn main() {}
