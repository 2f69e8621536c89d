//! A `#[client]` trait declared in another module: importing the trait is all the hub
//! needs (its proxy is found through the trait), and a path works without any import.

mod clients {
    use hubs::{HubError, client};

    #[client]
    pub trait Notifications {
        async fn notify(&self, text: String);
        async fn ask_name(&self) -> Result<String, HubError>;
    }
}

mod by_import {
    use super::clients::Notifications;
    use hubs::{Context, HubError, hub};

    pub struct Alerts;

    #[hub(client = Notifications)]
    impl Alerts {
        pub async fn alert(&self, cx: &Context<Self>, text: String) -> Result<String, HubError> {
            cx.clients().all().notify(text).await?;
            cx.clients().caller().ask_name().await
        }
    }
}

mod by_path {
    use hubs::{Context, HubError, hub};

    pub struct Alerts;

    #[hub(client = crate::clients::Notifications)]
    impl Alerts {
        pub async fn alert(&self, cx: &Context<Self>, text: String) -> Result<(), HubError> {
            cx.clients().others().notify(text).await?;
            Ok(())
        }
    }
}

fn main() {
    let _ = (by_import::Alerts, by_path::Alerts);
}
