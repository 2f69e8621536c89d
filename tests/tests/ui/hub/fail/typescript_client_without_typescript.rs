// A `#[hub(typescript)]` whose client trait does not describe itself says what to add.
use hubs::{client, hub, HubError};

#[client]
pub trait Member {
    async fn said(&self, text: String);
    async fn mood(&self) -> Result<String, HubError>;
}

pub struct Room;

#[hub(client = Member, typescript)]
impl Room {
    pub fn ping(&self) {}
}

fn main() {}
