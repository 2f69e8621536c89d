//! A typed Rust chat client for the chat example: lines typed on stdin go to the room (or
//! to everyone); `/who` lists the room, `/ask QUESTION` puts a question to the room.
//! Messages, room changes and typing from others are printed; questions from others are
//! answered with `--answer` (or passed).
//!
//! ```text
//! bash scripts/chat                       # the server, in another terminal
//! cargo run -p hubs-examples --bin chat_client -- --name ann [--room rust] [--answer "tea"] [--url http://127.0.0.1:5000/chat]
//! ```

use std::sync::Arc;

use hubs::HubError;
use hubs::connection::HubConnection;
use hubs_examples::chat::{
    ChatClient, ChatClientReceiver, ChatHubConnection, Message, Reply, RoomMembers,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Prints what the hub calls, and answers questions.
struct Printer {
    answer: Option<String>,
}

impl ChatClient for Printer {
    async fn receive_message(&self, message: Message) {
        let time = message.sent_at.format("%H:%M");
        if message.room.is_empty() {
            println!("[{time}] {}: {}", message.user, message.text);
        } else {
            println!(
                "[{time}] #{} {}: {}",
                message.room, message.user, message.text
            );
        }
    }

    async fn members(&self, members: RoomMembers) {
        println!("* #{}: {}", members.room, members.members.join(", "));
    }

    async fn typing(&self, room: String, user: String) {
        println!("* {user} is typing in #{room}…");
    }

    async fn ask(&self, from: String, question: String) -> Result<Reply, HubError> {
        println!("* {from} asks the room: {question}");
        Ok(match &self.answer {
            Some(text) => Reply::Answer { text: text.clone() },
            None => Reply::Pass,
        })
    }
}

/// A typed Rust client of the chat server.
#[derive(clap::Parser)]
struct Args {
    /// The chat hub's URL.
    #[arg(long, default_value = "http://127.0.0.1:5000/chat")]
    url: String,
    /// Your chat name (it is also the bearer token the example server accepts).
    #[arg(long, default_value = "rust")]
    name: String,
    /// The room to join; none by default.
    #[arg(long, default_value = "")]
    room: String,
    /// The answer given when the room is asked a question (passed otherwise).
    #[arg(long)]
    answer: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        url,
        name,
        room,
        answer,
    } = clap::Parser::parse();

    // The chat name is the bearer token (see `hubs_examples::chat::chat_user`).
    let token = name.clone();
    let connection = HubConnection::builder(url)
        .access_token(move || {
            let token = token.clone();
            async move { Some(token) }
        })
        .with_automatic_reconnect()
        .build();
    ChatClientReceiver::register(&connection, Arc::new(Printer { answer }));
    connection.start().await?;
    let chat = ChatHubConnection::new(&connection);
    if !room.is_empty() {
        let members = chat.join_room(room.clone()).await?;
        println!("* #{}: {}", members.room, members.members.join(", "));
    }
    println!("connected as {name}; type messages, /who, /ask QUESTION; end with Ctrl-D");

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let text = line.trim();
        if text == "/who" {
            println!(
                "* #{room}: {}",
                chat.members(room.clone()).await?.join(", ")
            );
        } else if let Some(question) = text.strip_prefix("/ask ") {
            for answer in chat.ask_room(room.clone(), question.to_owned()).await? {
                match answer.reply {
                    Some(Reply::Answer { text }) => println!("  {}: {text}", answer.user),
                    Some(Reply::Pass) => println!("  {} passed", answer.user),
                    None => println!("  {} did not answer", answer.user),
                }
            }
        } else if !text.is_empty() {
            chat.send_message(room.clone(), text.to_owned()).await?;
        }
    }
    connection.stop().await;
    Ok(())
}
