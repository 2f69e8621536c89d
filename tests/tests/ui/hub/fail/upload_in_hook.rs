use hubs::{Context, UploadStream};

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    async fn on_connected(&self, cx: &Context<Self>, stream: UploadStream<u32>) {
        let _ = (cx, stream);
    }
}

fn main() {}
