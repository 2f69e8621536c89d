use hubs::Context;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    async fn on_connected<T>(&self, cx: &Context<Self>) {
        let _ = cx;
    }
}

fn main() {}
