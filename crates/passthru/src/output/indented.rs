//! A JSON formatter that writes exactly what `serde_json::to_writer_pretty` writes (two-space
//! indent), but each line break and its indentation in one write instead of one write per level.
//!
//! A survey of a big host is hundreds of thousands of lines nested eight or more levels deep;
//! `serde_json::PrettyFormatter` writes the indent two bytes at a time, and those small buffered
//! writes were the largest single user-space cost of `passthru survey --json` (BENCHMARKS.md).

use std::io::{self, Write};

use serde_json::ser::Formatter;

/// `",\n"` followed by the indentation of the deepest level served from this slice; shallower
/// levels use a prefix of it, the line break alone starts at index 1.
const BREAK_AND_INDENT: &[u8; 2 + 2 * 32] =
    b",\n                                                                ";

/// How one nesting level is indented, as in `PrettyFormatter::new()`.
const INDENT: &[u8] = b"  ";

/// Writes pretty JSON byte for byte like `serde_json::ser::PrettyFormatter::new()`.
#[derive(Debug, Default)]
pub(crate) struct IndentedFormatter {
    depth: usize,
    has_value: bool,
}

impl IndentedFormatter {
    /// Writes a line break (after a comma unless `first`) and the current indentation.
    fn break_line<W: ?Sized + Write>(&self, writer: &mut W, comma: bool) -> io::Result<()> {
        let start = usize::from(!comma);
        let width = 2 + INDENT.len() * self.depth;
        match BREAK_AND_INDENT.get(start..width) {
            Some(bytes) => writer.write_all(bytes),
            None => {
                writer.write_all(&BREAK_AND_INDENT[start..2])?;
                (0..self.depth).try_for_each(|_| writer.write_all(INDENT))
            }
        }
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.break_line(writer, false)?;
        }
        writer.write_all(bracket)
    }
}

impl Formatter for IndentedFormatter {
    #[inline]
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    #[inline]
    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    #[inline]
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.break_line(writer, !first)
    }

    #[inline]
    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    #[inline]
    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    #[inline]
    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    #[inline]
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.break_line(writer, !first)
    }

    #[inline]
    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    #[inline]
    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Writes `value` as indented JSON to `writer`, the same bytes as `serde_json::to_writer_pretty`.
pub(crate) fn to_writer_indented<W: Write, T: serde::Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut serializer =
        serde_json::Serializer::with_formatter(writer, IndentedFormatter::default());
    value.serialize(&mut serializer)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn indented(value: &Value) -> String {
        let mut out = Vec::new();
        to_writer_indented(&mut out, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// An object nested `depth` levels deep, with arrays, empty containers and strings that
    /// need escaping at every level.
    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!("leaf \"quoted\"\n"), |inner, level| {
            json!({
                "level": level,
                "inner": inner,
                "list": [level, [], {}, null, "tab\there", [[1, 2], {"a": true}]],
                "empty_object": {},
                "empty_array": [],
            })
        })
    }

    #[test]
    fn matches_serde_json_pretty_output_shallow_and_past_the_precomputed_indent() {
        for depth in [0, 1, 2, 5, 31, 32, 33, 40] {
            let value = nested(depth);
            assert_eq!(
                indented(&value),
                serde_json::to_string_pretty(&value).unwrap(),
                "depth {depth}"
            );
        }
    }

    #[test]
    fn matches_serde_json_pretty_output_for_scalars_and_empty_containers() {
        for value in [
            json!(null),
            json!(1.5),
            json!("x"),
            json!([]),
            json!({}),
            json!([[]]),
        ] {
            assert_eq!(
                indented(&value),
                serde_json::to_string_pretty(&value).unwrap()
            );
        }
    }
}
