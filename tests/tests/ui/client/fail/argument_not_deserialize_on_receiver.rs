use std::sync::Arc;

#[derive(serde::Serialize)]
pub struct OnlySent;

#[hubs::client]
pub trait ChatClient {
    async fn receive(&self, value: OnlySent);
}

struct Printer;

impl ChatClient for Printer {
    async fn receive(&self, value: OnlySent) {
        let _ = value;
    }
}

fn register(connection: &hubs::connection::HubConnection) {
    ChatClientReceiver::register(connection, Arc::new(Printer));
}

fn main() {}
