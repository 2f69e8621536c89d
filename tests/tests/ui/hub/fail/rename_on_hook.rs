use hubs::Context;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(rename = "OnConnected")]
    async fn on_connected(&self, cx: &Context<Self>) {
        let _ = cx;
    }
}

fn main() {}
