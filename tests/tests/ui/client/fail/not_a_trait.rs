#[hubs::client]
pub struct NotATrait;

fn main() {}
