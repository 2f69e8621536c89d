//! The TypeScript text of a module: declarations, the hub and client interfaces, and a
//! typed wrapper over `@microsoft/signalr`'s `HubConnection`.

use std::fmt::Write as _;

use crate::shape::{MethodShape, Output, ParamShape};

/// A hub as described, ready to render.
pub(crate) struct HubText {
    pub(crate) name: String,
    pub(crate) methods: Vec<MethodShape>,
    /// The client interface's name, when the hub has a typed client.
    pub(crate) client: Option<String>,
}

/// A client interface as described.
pub(crate) struct ClientText {
    pub(crate) name: String,
    pub(crate) methods: Vec<MethodShape>,
}

/// `SendMessage` → `sendMessage`.
pub(crate) fn member_name(wire: &str) -> String {
    let mut chars = wire.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `room_name` → `roomName`; a TypeScript reserved word gets a trailing `_`.
pub(crate) fn param_name(rust: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in rust
        .trim_start_matches("r#")
        .trim_start_matches('_')
        .chars()
    {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("arg");
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// Words that cannot name a parameter in TypeScript's strict mode.
const RESERVED: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// A property key: the name itself when it is an identifier, else quoted.
fn key(name: &str) -> String {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if identifier {
        name.to_owned()
    } else {
        string(name)
    }
}

/// A TypeScript string literal.
fn string(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSDoc comment at `indent`, or nothing.
fn docs(out: &mut String, lines: &[String], indent: &str) {
    match lines {
        [] => {}
        [line] => {
            let _ = writeln!(out, "{indent}/** {} */", line.trim().replace("*/", "*\\/"));
        }
        lines => {
            let _ = writeln!(out, "{indent}/**");
            for line in lines {
                let line = line.trim_end().replace("*/", "*\\/");
                if line.trim().is_empty() {
                    let _ = writeln!(out, "{indent} *");
                } else {
                    let _ = writeln!(
                        out,
                        "{indent} * {}",
                        line.strip_prefix(' ').unwrap_or(&line)
                    );
                }
            }
            let _ = writeln!(out, "{indent} */");
        }
    }
}

fn params(params: &[ParamShape]) -> String {
    params
        .iter()
        .map(|p| {
            let ty = if p.upload {
                format!("Subject<{}>", p.ty)
            } else {
                p.ty.clone()
            };
            format!("{}: {ty}", param_name(&p.name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn arguments(method: &MethodShape) -> String {
    let mut out = string(&method.wire);
    for p in &method.params {
        out.push_str(", ");
        out.push_str(&param_name(&p.name));
    }
    out
}

fn names(method: &MethodShape) -> String {
    method
        .params
        .iter()
        .map(|p| param_name(&p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether any method streams, or takes an upload.
pub(crate) fn uses(hubs: &[HubText]) -> (bool, bool) {
    let methods = || hubs.iter().flat_map(|h| &h.methods);
    (
        methods().any(|m| matches!(m.output, Output::Stream(_))),
        methods().any(|m| m.params.iter().any(|p| p.upload)),
    )
}

/// `interface Hub { … }`, `interface HubSend { … }`, and the wrapper.
pub(crate) fn hub(out: &mut String, hub: &HubText) {
    let name = &hub.name;
    let _ = writeln!(
        out,
        "/** The methods of the hub `{name}`: each call waits for its result (or, for a stream, yields its items). */"
    );
    let _ = writeln!(out, "export interface {name} {{");
    for method in &hub.methods {
        docs(out, &method.docs, "  ");
        let returns = match &method.output {
            Output::Nothing => "Promise<void>".to_owned(),
            Output::Value(ty) => format!("Promise<{ty}>"),
            Output::Stream(ty) => format!("IStreamResult<{ty}>"),
        };
        let _ = writeln!(
            out,
            "  {}({}): {returns};",
            key(&member_name(&method.wire)),
            params(&method.params)
        );
    }
    let _ = writeln!(out, "}}\n");

    let sends: Vec<_> = hub
        .methods
        .iter()
        .filter(|m| !matches!(m.output, Output::Stream(_)))
        .collect();
    let _ = writeln!(
        out,
        "/** The methods of the hub `{name}` sent without waiting for them to run (`HubConnection.send`). */"
    );
    let _ = writeln!(out, "export interface {name}Send {{");
    for method in &sends {
        let _ = writeln!(
            out,
            "  {}({}): Promise<void>;",
            key(&member_name(&method.wire)),
            params(&method.params)
        );
    }
    let _ = writeln!(out, "}}\n");

    let _ = writeln!(
        out,
        "/** A `HubConnection` to the hub `{name}`, typed: from [`{}`]({}). */",
        member_name(name),
        member_name(name)
    );
    let _ = writeln!(out, "export interface {name}Connection {{");
    let _ = writeln!(
        out,
        "  /** The connection itself: `start`, `stop`, `state`, `onclose`, `onreconnecting`, … */"
    );
    let _ = writeln!(out, "  readonly connection: HubConnection;");
    let _ = writeln!(out, "  /** Calls a hub method and waits for its result. */");
    let _ = writeln!(out, "  readonly hub: {name};");
    let _ = writeln!(
        out,
        "  /** Sends a hub method without waiting for it to run. */"
    );
    let _ = writeln!(out, "  readonly send: {name}Send;");
    if let Some(client) = &hub.client {
        let _ = writeln!(
            out,
            "  /** Handles what the server calls; each registration returns a function that removes it. */"
        );
        let _ = writeln!(out, "  readonly on: {client}Handlers;");
    }
    let _ = writeln!(out, "}}\n");

    let _ = writeln!(
        out,
        "/** Types `connection` (built with `HubConnectionBuilder` for the hub's URL) as a connection to `{name}`. */"
    );
    let _ = writeln!(
        out,
        "export function {}(connection: HubConnection): {name}Connection {{",
        member_name(name)
    );
    let _ = writeln!(out, "  return {{");
    let _ = writeln!(out, "    connection,");
    let _ = writeln!(out, "    hub: {{");
    for method in &hub.methods {
        let call = match method.output {
            Output::Stream(_) => "stream",
            _ => "invoke",
        };
        let _ = writeln!(
            out,
            "      {}: ({}) => connection.{call}({}),",
            key(&member_name(&method.wire)),
            names(method),
            arguments(method)
        );
    }
    let _ = writeln!(out, "    }},");
    let _ = writeln!(out, "    send: {{");
    for method in &sends {
        let _ = writeln!(
            out,
            "      {}: ({}) => connection.send({}),",
            key(&member_name(&method.wire)),
            names(method),
            arguments(method)
        );
    }
    let _ = writeln!(out, "    }},");
    if let Some(client) = &hub.client {
        let _ = writeln!(out, "    on: {}Handlers(connection),", member_name(client));
    }
    let _ = writeln!(out, "  }};");
    let _ = writeln!(out, "}}\n");
}

/// `interface Client { … }`, `interface ClientHandlers { … }`, and their registration.
pub(crate) fn client(out: &mut String, client: &ClientText) {
    let name = &client.name;
    let _ = writeln!(
        out,
        "/** What the server calls on clients (`{name}`). A method with a result is a client result: return the answer, or a promise of it. */"
    );
    let _ = writeln!(out, "export interface {name} {{");
    let signature = |method: &MethodShape| {
        let returns = match &method.output {
            Output::Nothing => "void | Promise<void>".to_owned(),
            Output::Value(ty) | Output::Stream(ty) => format!("{ty} | Promise<{ty}>"),
        };
        format!("({}) => {returns}", params(&method.params))
    };
    for method in &client.methods {
        docs(out, &method.docs, "  ");
        let returns = match &method.output {
            Output::Nothing => "void | Promise<void>".to_owned(),
            Output::Value(ty) | Output::Stream(ty) => format!("{ty} | Promise<{ty}>"),
        };
        let _ = writeln!(
            out,
            "  {}({}): {returns};",
            key(&member_name(&method.wire)),
            params(&method.params)
        );
    }
    let _ = writeln!(out, "}}\n");

    let _ = writeln!(
        out,
        "/** Registers handlers for `{name}`; each registration returns a function that removes it. */"
    );
    let _ = writeln!(out, "export interface {name}Handlers {{");
    for method in &client.methods {
        let _ = writeln!(
            out,
            "  {}(handler: {}): () => void;",
            key(&member_name(&method.wire)),
            signature(method)
        );
    }
    let _ = writeln!(out, "}}\n");

    let _ = writeln!(
        out,
        "/** Handlers for `{name}` on `connection`, registered under their wire names. */"
    );
    let _ = writeln!(
        out,
        "export function {}Handlers(connection: HubConnection): {name}Handlers {{",
        member_name(name)
    );
    let _ = writeln!(out, "  return {{");
    for method in &client.methods {
        let _ = writeln!(
            out,
            "    {}: (handler) => {{",
            key(&member_name(&method.wire))
        );
        let _ = writeln!(
            out,
            "      connection.on({}, handler);",
            string(&method.wire)
        );
        let _ = writeln!(
            out,
            "      return () => connection.off({}, handler);",
            string(&method.wire)
        );
        let _ = writeln!(out, "    }},");
    }
    let _ = writeln!(out, "  }};");
    let _ = writeln!(out, "}}\n");
}

/// A declaration's documentation and text, as ts-rs gives it.
pub(crate) fn declaration(out: &mut String, text: &str) {
    out.push_str(&crate::layout::declaration(text));
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(member_name("SendMessage"), "sendMessage");
        assert_eq!(member_name("send"), "send");
        assert_eq!(param_name("room_name"), "roomName");
        assert_eq!(param_name("_unused"), "unused");
        assert_eq!(param_name("r#type"), "type");
        assert_eq!(param_name("default"), "default_");
        assert_eq!(key("my-method"), "\"my-method\"");
        assert_eq!(key("sendMessage"), "sendMessage");
        assert_eq!(string("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
