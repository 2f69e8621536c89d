use hubs::Context;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    async fn on_connected(&self, cx: &Context<Self>, again: Context<Self>) {
        let _ = (cx, again);
    }
}

fn main() {}
