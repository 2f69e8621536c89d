use std::sync::Arc;

use hubs::{Context, hub, HubError};
use serde::{Deserialize, Serialize};

pub struct Db;
pub struct Cache;

#[derive(Serialize, Deserialize)]
pub struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug)]
pub struct MyError;
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mine")
    }
}

pub struct Everything;

#[hub]
impl Everything {
    pub fn unit(&self) {}
    pub fn typed_receiver(self: &Self) {}
    pub fn unit_explicit(&self) -> () {}
    pub fn value(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    pub async fn async_value(&self, p: Point) -> Point {
        p
    }
    pub fn hub_result(&self) -> Result<String, HubError> {
        Ok(String::new())
    }
    pub async fn other_result(&self) -> Result<Vec<u8>, MyError> {
        Err(MyError)
    }
    pub fn boxed_error(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
    pub fn context_ref(&self, cx: &Context<Self>) -> String {
        cx.connection_id().to_string()
    }
    pub fn context_owned(&self, cx: Context<Self>, tail: Option<String>) -> Option<String> {
        let _ = cx;
        tail
    }
    pub async fn services(
        &self,
        #[hub(service)] db: &Db,
        #[hub(service = "hot")] cache: Arc<Cache>,
        cx: &Context<Self>,
        n: u32,
    ) -> u32 {
        let _ = (db, cache, cx);
        n
    }
    #[hub(rename = "Renamed")]
    pub fn renamed(&self) {}
    pub(crate) fn crate_visible(&self) {}
    #[hub(skip)]
    pub fn not_a_hub_method(&self, _not_deserializable: &mut Vec<u8>) {}
    fn helper(&self) {}

    async fn on_connected(&self, cx: &Context<Self>) -> Result<(), HubError> {
        self.helper();
        let _ = cx;
        Ok(())
    }
    async fn on_disconnected(&self, cx: &Context<Self>, error: Option<HubError>) {
        let _ = (cx, error);
    }
    async fn on_authentication_refreshed(&self, cx: &Context<Self>) {
        let _ = cx.user();
    }
}

pub struct Hooks;

#[hub(crate = "::hubs")]
impl Hooks {
    fn on_connected(&self) {}
    fn on_disconnected(&self, _cx: &Context<Self>) {}
    fn on_authentication_refreshed(&self) {}
}

fn main() {
    let _ = hubs::Server::new()
        .service(Db)
        .keyed_service("hot", Cache)
        .hub("/everything", Everything)
        .hub("/hooks", Hooks)
        .build()
        .map_err(|e| e.to_string());
    fn is_hub<H: hubs::Hub>() {}
    is_hub::<Everything>();
    is_hub::<Hooks>();
}
