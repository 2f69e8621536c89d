use hubs::{Context, HubError};

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    #[hub(authorize)]
    async fn on_connected(&self, _cx: &Context<Self>) -> Result<(), HubError> {
        Ok(())
    }
}

fn main() {}
