use hubs::CancellationToken;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub async fn wait(&self, cancel: &CancellationToken) {
        cancel.cancelled().await;
    }
}

fn main() {}
