//! Shows what a few hub messages look like on the wire, in both hub protocols.
//!
//! ```text
//! cargo run -p hubs-examples --bin wire
//! ```

use hubs::protocol::{Completion, HubMessage, Invocation, Protocol, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for protocol in Protocol::ALL {
        println!("== {protocol}");
        let messages = [
            HubMessage::Invocation(Invocation {
                invocation_id: Some("0".into()),
                target: "SendMessage".into(),
                arguments: vec![
                    Value::serialize(protocol, "ann")?,
                    Value::serialize(protocol, "hello")?,
                ],
                ..Default::default()
            }),
            HubMessage::Completion(Completion::result("0", Value::null(protocol))),
            HubMessage::Ping,
        ];
        for message in &messages {
            let mut out = Vec::new();
            protocol.encode(message, &mut out)?;
            let shown = match protocol {
                Protocol::Json => String::from_utf8_lossy(&out).replace('\x1e', "␞"),
                Protocol::MessagePack => out.iter().map(|b| format!("{b:02X} ")).collect(),
            };
            println!("{shown}");
            let mut decoder = protocol.decoder();
            decoder.push(&out);
            assert_eq!(decoder.next_message()?.as_ref(), Some(message));
        }
    }
    Ok(())
}
