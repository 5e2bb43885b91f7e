//! Physical line numbers of CSV records, for the `file:line` every file source reports.

/// Physical line numbers from byte offsets. The csv crate's own line count skips blank lines
/// and counts a CRLF file's lines one too low, so locations are counted here: the number of
/// line breaks before the record's first character, plus one.
#[derive(Debug, Default)]
pub struct LineCounter {
    /// Bytes counted so far, and the line breaks among them.
    pos: usize,
    newlines: u64,
}

impl LineCounter {
    /// The line of the record whose position the csv reader gives as `offset` (where the
    /// previous record's terminator ended: the record itself starts after any line breaks).
    /// Offsets must not decrease between calls.
    pub fn line_at(&mut self, bytes: &[u8], offset: u64) -> u64 {
        let mut start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len()).max(self.pos);
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        // A line ends with LF, CRLF, or a lone CR (classic Mac exports).
        let part = &bytes[self.pos..start];
        let breaks = part
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' || **b == b'\r' && part.get(i + 1) != Some(&b'\n'))
            .count();
        self.newlines += breaks as u64;
        self.pos = start;
        self.newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_lf_crlf_and_lone_cr_and_skip_blank_lines() {
        let text = b"a\r\n\r\nb\nc\rd";
        let mut l = LineCounter::default();
        // Offsets as the csv reader gives them: where the previous record's terminator ended.
        assert_eq!(l.line_at(text, 0), 1);
        assert_eq!(l.line_at(text, 3), 3, "the blank line is counted");
        assert_eq!(l.line_at(text, 7), 4);
        assert_eq!(l.line_at(text, 9), 5, "a lone CR ends a line");
    }
}
