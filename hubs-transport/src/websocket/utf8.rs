//! UTF-8 validated across the pieces of a text message, which may split a character.

/// The text is not UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct InvalidUtf8;

/// Validates UTF-8 given in pieces that may split a character.
#[derive(Debug, Default)]
pub(super) struct Utf8Validator {
    /// The start of a character the last piece ended inside (at most 3 bytes).
    partial: [u8; 4],
    /// How many bytes of `partial` are set.
    partial_len: usize,
}

impl Utf8Validator {
    /// Validates the next piece.
    pub(super) fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            // Complete the character the last piece ended inside.
            let width = utf8_width(self.partial[0]);
            let take = width.saturating_sub(self.partial_len).min(piece.len());
            let end = self.partial_len + take;
            self.partial[self.partial_len..end].copy_from_slice(&piece[..take]);
            match std::str::from_utf8(&self.partial[..end]) {
                Ok(_) => self.partial_len = 0,
                Err(error) if error.error_len().is_none() => {
                    // Still incomplete: the piece is used up.
                    self.partial_len = end;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            piece = &piece[take..];
        }
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(error) if error.error_len().is_none() => {
                // The piece ends inside a character (at most 3 bytes of it).
                let tail = &piece[error.valid_up_to()..];
                let partial = self.partial.get_mut(..tail.len()).ok_or(InvalidUtf8)?;
                partial.copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Checks that the text does not end inside a character.
    pub(super) fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.partial_len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

/// The length of the UTF-8 sequence that starts with `lead`, as its high bits tell (an
/// invalid lead byte is caught by the validation itself).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0x80..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}
