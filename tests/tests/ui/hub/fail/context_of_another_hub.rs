use hubs::Context;

pub struct Other;
#[hubs::hub]
impl Other {}

pub struct MyHub;

#[hubs::hub]
impl MyHub {
    pub fn name(&self, cx: &Context<Other>) {
        let _ = cx;
    }
}

fn main() {}
