//! A typed Rust chat client for the chat example: messages typed on stdin go to the room
//! (or to everyone); messages from others are printed.
//!
//! ```text
//! bash scripts/chat                       # the server, in another terminal
//! cargo run -p hubs-examples --bin chat_client -- --name ann [--room rust] [--url http://127.0.0.1:5000/chat]
//! ```

use std::sync::Arc;

use hubs::client::HubConnection;
use hubs_examples::chat::{ChatClient, ChatClientReceiver, ChatHubProxy};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Prints what the hub calls.
struct Printer;

impl ChatClient for Printer {
    async fn receive_message(&self, room: String, user: String, text: String) {
        if room.is_empty() {
            println!("{user}: {text}");
        } else {
            println!("#{room} {user}: {text}");
        }
    }

    async fn joined(&self, room: String, user: String) {
        println!("* {user} joined #{room}");
    }

    async fn left(&self, room: String, user: String) {
        println!("* {user} left #{room}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "http://127.0.0.1:5000/chat".to_owned();
    let mut name = "rust".to_owned();
    let mut room = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or("every option takes a value")?;
        match arg.as_str() {
            "--url" => url = value,
            "--name" => name = value,
            "--room" => room = value,
            other => {
                return Err(
                    format!("unknown option {other}; expected --url, --name, --room").into(),
                );
            }
        }
    }

    let connection = HubConnection::builder(url)
        .with_automatic_reconnect()
        .build();
    ChatClientReceiver::register(&connection, Arc::new(Printer));
    connection.start().await?;
    let chat = ChatHubProxy::new(&connection);
    if !room.is_empty() {
        chat.join_room(room.clone(), name.clone()).await?;
    }
    println!("connected as {name}; type messages, end with Ctrl-D");

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let text = line.trim();
        if !text.is_empty() {
            chat.send_message(room.clone(), name.clone(), text.to_owned())
                .await?;
        }
    }
    connection.stop().await;
    Ok(())
}
