use hubs::UploadStream;

pub struct NotData;
pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub async fn take(&self, things: UploadStream<NotData>) {
        drop(things);
    }
}

fn main() {}
