use std::cell::Cell;

#[hubs::client]
pub trait ChatClient {
    async fn receive(&self, count: Cell<u32>);
}

fn main() {}
