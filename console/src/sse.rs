//! Server-sent events (`text/event-stream`), parsed from the bytes as they arrive: complete
//! events are taken out of the buffer, a partial one waits for the rest.
//!
//! Only `event` and `data` are read. `id` and `retry` are not: the console does not resume
//! with `Last-Event-ID` (the backend keeps no history to replay); after a reconnection it reads
//! again what it shows instead.

/// One event: its type (`message` when unnamed) and its data lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event` field (`domain`, `deleted`, `resync`).
    pub kind: String,
    /// The `data` fields, JSON for every event the backend sends.
    pub data: String,
}

/// Accumulates chunks; yields complete events.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes, not text: a chunk may end inside a UTF-8 sequence.
    buffer: Vec<u8>,
}

impl Parser {
    /// Add a chunk; return the events it completed (comments and empty events are dropped).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, sep)) = boundary(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            if let Some(event) = parse_block(&text) {
                events.push(event);
            }
        }
        events
    }
}

/// Where the first blank line is: (its start, its length). The format allows all three line
/// endings, so all three are looked for.
fn boundary(buf: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buf.len() {
        for sep in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"] {
            if buf[i..].starts_with(sep) {
                return Some((i, sep.len()));
            }
        }
    }
    None
}

/// One event's lines (the blank line that ended it taken off): `None` when it has no data,
/// as a keep-alive comment has none.
fn parse_block(block: &str) -> Option<Event> {
    let mut kind = String::from("message");
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        // `field: value`, one space after the colon being part of the syntax, not the value.
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => kind = value.to_owned(),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(Event {
        kind,
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_joined() {
        let mut p = Parser::default();
        assert!(p.push(b"event: domain\ndata: {\"na").is_empty());
        let events = p.push(b"me\":\"a\"}\n\n: keep-alive\n\nevent: resync\ndata: {}\n\n");
        assert_eq!(
            events,
            vec![
                Event {
                    kind: "domain".into(),
                    data: "{\"name\":\"a\"}".into()
                },
                Event {
                    kind: "resync".into(),
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn crlf_and_multi_line_data() {
        let mut p = Parser::default();
        let events = p.push(b"data: a\r\ndata: b\r\n\r\n");
        assert_eq!(events[0].kind, "message");
        assert_eq!(events[0].data, "a\nb");
    }
}
