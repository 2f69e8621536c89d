//! Lays out ts-rs's declarations for people: ts-rs writes each on one line, breaking
//! only around the doc comments of fields. Objects that carry doc comments or do not fit
//! on a line get one member per line, indented; doc comments become one-line JSDoc.

/// A piece of a declaration.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `/** … */`, its text on one line.
    Doc(String),
    Open(char),
    Close(char),
    Comma,
    /// Anything else, spaces collapsed (string literals kept whole).
    Text(String),
}

const WIDTH: usize = 96;

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut text_run = String::new();
    let flush = |run: &mut String, out: &mut Vec<Token>| {
        let collapsed = run.split_whitespace().collect::<Vec<_>>().join(" ");
        if !collapsed.is_empty() {
            out.push(Token::Text(collapsed));
        }
        run.clear();
    };
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            flush(&mut text_run, &mut out);
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                .unwrap_or(chars.len() - 2);
            let body: String = chars[i + 2..end].iter().collect();
            let body = body
                .trim_start_matches('*')
                .lines()
                .map(|line| line.trim().trim_start_matches('*').trim())
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            out.push(Token::Doc(body));
            i = end + 2;
            continue;
        }
        match c {
            '"' => {
                // A string literal, kept as written.
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                let end = j.min(chars.len() - 1);
                text_run.extend(&chars[i..=end]);
                i = end + 1;
                continue;
            }
            '{' | '[' | '(' => {
                flush(&mut text_run, &mut out);
                out.push(Token::Open(c));
            }
            '}' | ']' | ')' => {
                flush(&mut text_run, &mut out);
                out.push(Token::Close(c));
            }
            '<' => {
                flush(&mut text_run, &mut out);
                out.push(Token::Open('<'));
            }
            '>' if i > 0 && chars[i - 1] == '=' => text_run.push('>'),
            '>' => {
                flush(&mut text_run, &mut out);
                out.push(Token::Close('>'));
            }
            ',' => {
                flush(&mut text_run, &mut out);
                out.push(Token::Comma);
            }
            c => text_run.push(c),
        }
        i += 1;
    }
    flush(&mut text_run, &mut out);
    out
}

/// The index of the close that matches the open at `start`.
fn group_end(tokens: &[Token], start: usize) -> usize {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(start) {
        match token {
            Token::Open(_) => depth += 1,
            Token::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len() - 1
}

/// Joins tokens on one line.
fn flat(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        match token {
            Token::Doc(text) => {
                push_word(&mut out, &format!("/** {text} */"));
            }
            Token::Open('<') => out.push('<'),
            Token::Open(c) => push_word(&mut out, &c.to_string()),
            Token::Close(c) => {
                if *c == '}' {
                    if out.ends_with(',') {
                        out.pop();
                    }
                    push_word(&mut out, "}");
                } else {
                    if out.ends_with(',') {
                        out.pop();
                    }
                    out.push(*c);
                }
            }
            Token::Comma => out.push(','),
            // `x: T` after a close (`[key in K]: V`) keeps its colon on the close.
            Token::Text(text) if text.starts_with(':') => out.push_str(text),
            Token::Text(text) => push_word(&mut out, text),
        }
    }
    out
}

fn push_word(out: &mut String, word: &str) {
    if !out.is_empty() && !out.ends_with([' ', '<', '[', '(']) {
        out.push(' ');
    }
    out.push_str(word);
}

/// Lays out `tokens` at `indent`, breaking objects that need it.
fn layout(tokens: &[Token], indent: usize, out: &mut String) {
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Open('{') {
            let end = group_end(tokens, i);
            let inner = &tokens[i + 1..end];
            let has_docs = inner.iter().any(|t| matches!(t, Token::Doc(_)));
            let one_line = flat(&tokens[i..=end]);
            let line_start = out.rfind('\n').map_or(0, |n| n + 1);
            if !has_docs && out.len() - line_start + one_line.len() < WIDTH {
                push_word(out, &one_line);
            } else {
                push_word(out, "{");
                members(inner, indent + 2, out);
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                out.push('}');
            }
            i = end + 1;
        } else {
            let next_brace = tokens[i..]
                .iter()
                .position(|t| *t == Token::Open('{'))
                .map_or(tokens.len(), |p| i + p);
            let piece = flat(&tokens[i..next_brace]);
            if piece == "," || piece.starts_with([',', ';', ']', ')', '>']) {
                out.push_str(&piece);
            } else {
                push_word(out, &piece);
            }
            i = next_brace;
        }
    }
}

/// The members of an object, one per line at `indent`.
fn members(tokens: &[Token], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let mut start = 0;
    let mut depth = 0usize;
    let emit = |member: &[Token], out: &mut String| {
        let mut member = member;
        while let [Token::Doc(text), rest @ ..] = member {
            out.push('\n');
            out.push_str(&pad);
            out.push_str(&format!("/** {text} */"));
            member = rest;
        }
        if member.is_empty() {
            return;
        }
        out.push('\n');
        out.push_str(&pad);
        let mut line = String::new();
        layout(member, indent, &mut line);
        out.push_str(line.trim_start());
        out.push(',');
    };
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Open(_) => depth += 1,
            Token::Close(_) => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                emit(&tokens[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    emit(&tokens[start..], out);
}

/// `text` (a ts-rs declaration, possibly after its doc comment) laid out.
pub(crate) fn declaration(text: &str) -> String {
    let tokens = tokens(text);
    let mut out = String::new();
    // The declaration's own doc comment, on its line(s).
    let mut rest: &[Token] = &tokens;
    while let [Token::Doc(doc), tail @ ..] = rest {
        out.push_str(&format!("/** {doc} */\n"));
        rest = tail;
    }
    let mut body = String::new();
    layout(rest, 0, &mut body);
    out.push_str(body.trim());
    out
}

#[cfg(test)]
mod tests {
    use super::declaration;

    #[test]
    fn documented_fields_go_one_per_line() {
        let text = "/**\n * An answer.\n */\nexport type Answer = { \n/**\n * The member.\n */\nuser: string, \n/**\n * Their reply.\n */\nreply: Reply | null, };";
        assert_eq!(
            declaration(text),
            "/** An answer. */\nexport type Answer = {\n  /** The member. */\n  user: string,\n  /** Their reply. */\n  reply: Reply | null,\n};"
        );
    }

    #[test]
    fn short_objects_stay_on_a_line() {
        assert_eq!(
            declaration(
                "export type P = { x: number, y: Array<number>, m: { [key in string]: number }, };"
            ),
            "export type P = { x: number, y: Array<number>, m: { [key in string]: number } };"
        );
        assert_eq!(
            declaration("export type Vote = \"Yes\" | \"No\";"),
            "export type Vote = \"Yes\" | \"No\";"
        );
    }

    #[test]
    fn unions_of_documented_variants() {
        let text = "export type Reply = { \"kind\": \"answer\", \n/**\n * What.\n */\ntext: string, } | { \"kind\": \"pass\" };";
        assert_eq!(
            declaration(text),
            "export type Reply = {\n  \"kind\": \"answer\",\n  /** What. */\n  text: string,\n} | { \"kind\": \"pass\" };"
        );
    }
}
