use hubs::Context;

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn name(&self, cx: &mut Context<Self>) {
        let _ = cx;
    }
}

fn main() {}
