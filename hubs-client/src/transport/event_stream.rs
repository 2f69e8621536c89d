//! Reading a `text/event-stream` body: the data of its events, as a byte stream for the
//! hub protocol's decoder, forwarded as it arrives so that nothing here grows with what
//! the server sends.

/// What the current line is, as far as it has been read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// The field name so far (at most `data`, 4 bytes, is worth keeping).
    Name,
    /// A `data` field; `fresh` until its first value byte (whose leading space is dropped).
    Data { fresh: bool },
    /// Another field (`event`, `id`, `retry`), a comment or garbage: skipped.
    Skip,
}

/// Turns an event stream into the concatenation of its events' data, as the server wrote
/// it: the `data` lines of one event are joined by `\n`, events follow one another. Each
/// call to [`push`](Self::push) returns what its chunk completed; the parser itself keeps
/// at most four bytes (a field name being read), however long a line is.
#[derive(Debug)]
pub(crate) struct EventStream {
    line: Line,
    name: [u8; 4],
    name_len: usize,
    /// The current event already has data: the next `data` line starts with `\n`.
    event_has_data: bool,
    /// The last byte was a `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
}

impl Default for EventStream {
    fn default() -> Self {
        Self {
            line: Line::Name,
            name: [0; 4],
            name_len: 0,
            event_has_data: false,
            after_cr: false,
        }
    }
}

impl EventStream {
    /// Reads `chunk`; returns the data bytes it carried (never more than `chunk.len()`).
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::take(&mut self.after_cr);
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    self.end_line(&mut data);
                }
                _ => self.byte(byte, &mut data),
            }
        }
        data
    }

    fn byte(&mut self, byte: u8, data: &mut Vec<u8>) {
        match self.line {
            Line::Name if byte == b':' => {
                if self.name() == b"data" {
                    self.start_data(data);
                    self.line = Line::Data { fresh: true };
                } else {
                    self.line = Line::Skip;
                }
            }
            Line::Name => match self.name.get_mut(self.name_len) {
                Some(slot) => {
                    *slot = byte;
                    // Below 4: the slot at `name_len` existed.
                    self.name_len += 1;
                }
                // Longer than `data`: not a field this client reads.
                None => self.line = Line::Skip,
            },
            Line::Data { fresh: true } if byte == b' ' => self.line = Line::Data { fresh: false },
            Line::Data { .. } => {
                self.line = Line::Data { fresh: false };
                data.push(byte);
            }
            Line::Skip => {}
        }
    }

    fn end_line(&mut self, data: &mut Vec<u8>) {
        match self.line {
            // An empty line ends the event.
            Line::Name if self.name_len == 0 => self.event_has_data = false,
            // A bare `data` line: a field with an empty value.
            Line::Name if self.name() == b"data" => self.start_data(data),
            Line::Name | Line::Data { .. } | Line::Skip => {}
        }
        self.line = Line::Name;
        self.name_len = 0;
    }

    /// A `data` field begins: on the event's second and later ones, after a `\n`.
    fn start_data(&mut self, data: &mut Vec<u8>) {
        if self.event_has_data {
            data.push(b'\n');
        }
        self.event_has_data = true;
    }

    fn name(&self) -> &[u8] {
        self.name.get(..self.name_len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(chunks: &[&[u8]]) -> Vec<u8> {
        let mut events = EventStream::default();
        chunks.iter().flat_map(|chunk| events.push(chunk)).collect()
    }

    #[test]
    fn data_lines_join_within_an_event_and_events_follow_each_other() {
        let body = b"data: {\"type\":6}\x1e\r\n\r\n:comment\nid: 7\ndata:a\ndata: b\n\ndata\n\n";
        assert_eq!(read(&[body]), b"{\"type\":6}\x1ea\nb".to_vec());
    }

    #[test]
    fn any_chunking_reads_the_same() {
        let body: &[u8] = b"event: x\r\ndata: one\rdata:  two\r\n\r\ndata: three\n\n";
        let whole = read(&[body]);
        assert_eq!(whole, b"one\n twothree".to_vec());
        for size in 1..body.len() {
            let chunks: Vec<&[u8]> = body.chunks(size).collect();
            assert_eq!(read(&chunks), whole, "chunks of {size}");
        }
    }

    #[test]
    fn long_lines_are_forwarded_not_kept() {
        let mut events = EventStream::default();
        assert_eq!(events.push(b"data: "), b"");
        let big = vec![b'x'; 100_000];
        assert_eq!(events.push(&big), big);
        // A long line of another field costs nothing either.
        assert_eq!(events.push(b"\nretryingforever"), b"");
        assert_eq!(events.push(&big), b"");
        assert_eq!(events.push(b"\ndata: y\n"), b"\ny");
    }

    #[test]
    fn fields_that_only_start_like_data_are_skipped() {
        assert_eq!(read(&[b"dat: a\ndataz: b\nda\ndata: c\n\n"]), b"c".to_vec());
    }
}
