#[hubs::hub]
pub struct NotAnImpl;

fn main() {}
