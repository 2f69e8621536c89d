use hubs::{Context, HubError};

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    // The hook takes the context only and returns nothing: a refresh is already accepted.
    fn on_authentication_refreshed(&self, cx: &Context<Self>, who: String) -> Result<(), HubError> {
        let _ = (cx, who);
        Ok(())
    }
}

fn main() {}
