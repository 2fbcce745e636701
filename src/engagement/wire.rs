//! Reading a command's responses straight off the connection, for the scan's FETCH of a
//! thousand messages: one buffer read into and parsed in place, each response handed out as
//! slices of it.
//!
//! async-imap's stream copies what follows each response it decodes into a fresh buffer and
//! gives the next decode a new zeroed 4 KiB block, then parses the response with imap-proto
//! into owned attribute lists: per message, two allocations, a copy of everything read after
//! it, and a general parser. Profiled under `hearth bench imap-scan`, that decoding was the
//! largest single cost of reading a FETCH (more than TLS); with this reader, Hearth's CPU time
//! for reading, verifying and classifying 1,000 messages went from 7.3–7.7 to 5.5–5.8 ms, about
//! what the plain client spends on reading alone. The scan needs three attributes of a FETCH
//! response (UID, INTERNALDATE, the part its mark is in), which [`Reader`] picks out of the
//! bytes; every other response is framed (its end found, literals included) and skipped,
//! tagged answers excepted.
//!
//! The commands are still sent through async-imap, which reads nothing ahead: the server
//! sends nothing between a command's tagged answer and the next command, so the session's
//! own buffer is empty when a [`Reader`] starts. Whatever the reader has read past the last
//! answer it waits for goes back to the connection ([`Reader::finish`]), to be the next
//! thing async-imap reads.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("reading from the IMAP server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("unreadable response from the IMAP server: {0}")]
    Malformed(String),
}

/// A command's tagged answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// What a FETCH response holds of what the scan reads (the first of each, as async-imap's
/// `Fetch` accessors find them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchAttrs<'a> {
    pub uid: Option<u32>,
    /// INTERNALDATE as the server wrote it.
    pub internal_date: Option<&'a str>,
    /// `BODY[HEADER…]` (whole header or some fields of it) or `RFC822.HEADER`.
    pub header: Option<&'a [u8]>,
    /// `BODY[]` or `RFC822`: the whole message.
    pub body: Option<&'a [u8]>,
}

/// One response, as slices of the reader's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    /// `* n FETCH (…)`.
    Fetch(FetchAttrs<'a>),
    /// A tagged answer: the tag, the status, the rest of the line.
    Done {
        tag: &'a str,
        status: Status,
        text: &'a str,
    },
    /// `* n EXISTS`: how many messages the selected folder holds.
    Exists(u32),
    /// `* OK [UIDVALIDITY n]` (a SELECT's).
    UidValidity(u32),
    /// `* OK [UIDNEXT n]` (a SELECT's): the UID the next message will get.
    UidNext(u32),
    /// `* SEARCH n n …`: the UIDs (or numbers) a SEARCH found.
    Search(Vec<u32>),
    /// Any other untagged response, or a continuation request.
    Other,
}

/// The size of the buffer: a TLS record's plaintext is at most 16 KiB, so one read takes a
/// whole record. It grows for a response (a literal) that does not fit. Small, since every
/// seed's scan has one while it runs.
const BUFFER: usize = 16 * 1024;

/// The largest response read: a whole message (body mark) is fetched, and warm-up mail is
/// small; a server announcing more is not trusted with the memory.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

/// Reads responses off a connection into one buffer, reused from response to response.
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The length of the response last handed out, consumed at the next call.
    last: usize,
    /// How many unread bytes the next response needs at least (known from a literal's size).
    need: usize,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            last: 0,
            need: 0,
        }
    }
}

impl Reader {
    /// The next response; reads from `stream` until one is complete.
    pub async fn next<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
    ) -> Result<Response<'_>, WireError> {
        self.start += self.last;
        self.last = 0;
        loop {
            let unread = &self.buf[self.start..self.end];
            if unread.len() >= self.need {
                match frame(unread)? {
                    Framed::Complete(len) => {
                        self.need = 0;
                        self.last = len;
                        return parse_response(&self.buf[self.start..self.start + len]);
                    }
                    Framed::Needs(n) => self.need = n,
                }
            }
            self.fill(stream).await?;
        }
    }

    /// Reads more, making room first: what is unread moves to the front, and the buffer
    /// grows if the response being read needs more than it holds.
    async fn fill<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
    ) -> Result<(), WireError> {
        let unread = self.end - self.start;
        let wanted = self.need.max(unread + 1);
        if self.buf.len() - self.start < wanted || self.buf.len() - self.end < 4096 {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = unread;
            if self.buf.len() < wanted + 4096 {
                self.buf.resize(wanted + BUFFER, 0);
            }
        }
        let n = stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(WireError::Closed);
        }
        self.end += n;
        Ok(())
    }

    /// What was read past the last response handed out: bytes of responses to come, which
    /// the session's next read should get.
    pub fn finish(mut self) -> Vec<u8> {
        self.start += self.last;
        self.buf.truncate(self.end);
        self.buf.drain(..self.start);
        self.buf
    }
}

enum Framed {
    /// The first response is this many bytes long (its CRLF included).
    Complete(usize),
    /// Not all read yet: at least this many bytes are needed.
    Needs(usize),
}

/// Finds where the first response of `b` ends: the first CRLF not inside a literal
/// (`{n}` at a line's end, followed by n bytes).
fn frame(b: &[u8]) -> Result<Framed, WireError> {
    let mut i = 0;
    loop {
        let Some(at) = memchr(b'\n', &b[i..]) else {
            if b.len() >= MAX_RESPONSE {
                return Err(WireError::Malformed(
                    "a line longer than a scan reads".into(),
                ));
            }
            return Ok(Framed::Needs(b.len() + 1));
        };
        let eol = i + at; // the '\n'
        // Only what follows the last literal: a literal's own text announces nothing.
        let line = &b[i..eol];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match literal_size(line) {
            Some(size) => {
                let after = eol + 1 + size;
                if after > MAX_RESPONSE {
                    return Err(WireError::Malformed(format!(
                        "a literal of {size} bytes is more than a scan reads"
                    )));
                }
                if after > b.len() {
                    return Ok(Framed::Needs(after + 2));
                }
                i = after;
            }
            None => return Ok(Framed::Complete(eol + 1)),
        }
    }
}

/// The size of the literal announced at the end of `line` (`{123}` or `{123+}`), if any.
fn literal_size(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let inner = inner.strip_suffix(b"+").unwrap_or(inner);
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&c| c == needle)
}

fn malformed(what: &str, b: &[u8]) -> WireError {
    let shown = &b[..b.len().min(120)];
    WireError::Malformed(format!("{what}: {:?}", String::from_utf8_lossy(shown)))
}

/// Reads one framed response (CRLF included).
pub(crate) fn parse_response(b: &[u8]) -> Result<Response<'_>, WireError> {
    let line = b.strip_suffix(b"\n").unwrap_or(b);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(rest) = line.strip_prefix(b"* ") {
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            let after = &rest[digits..];
            if after.len() >= 7 && after[..7].eq_ignore_ascii_case(b" FETCH ") {
                return parse_fetch(&after[7..]).map(Response::Fetch);
            }
            if after.eq_ignore_ascii_case(b" EXISTS") {
                return number_of(&rest[..digits], b).map(Response::Exists);
            }
            return Ok(Response::Other);
        }
        return untagged(rest, b);
    }
    if line.first() == Some(&b'+') {
        return Ok(Response::Other);
    }
    let sp = memchr(b' ', line).ok_or_else(|| malformed("no tag", b))?;
    let tag = std::str::from_utf8(&line[..sp]).map_err(|_| malformed("tag", b))?;
    if tag.is_empty() || !tag.bytes().all(is_atom_char) {
        return Err(malformed("tag", b));
    }
    let rest = &line[sp + 1..];
    let word_len = memchr(b' ', rest).unwrap_or(rest.len());
    let status = match &rest[..word_len] {
        w if w.eq_ignore_ascii_case(b"OK") => Status::Ok,
        w if w.eq_ignore_ascii_case(b"NO") => Status::No,
        w if w.eq_ignore_ascii_case(b"BAD") => Status::Bad,
        _ => return Err(malformed("tagged answer", b)),
    };
    let text = rest.get(word_len + 1..).unwrap_or_default();
    Ok(Response::Done {
        tag,
        status,
        text: std::str::from_utf8(text).unwrap_or(""),
    })
}

/// An untagged response that starts with a word: the SELECT's `OK [UIDVALIDITY n]` and
/// `OK [UIDNEXT n]`, a SEARCH's numbers; anything else is [`Response::Other`].
fn untagged<'a>(rest: &[u8], b: &[u8]) -> Result<Response<'a>, WireError> {
    let word_len = memchr(b' ', rest).unwrap_or(rest.len());
    let (word, after) = (
        &rest[..word_len],
        rest.get(word_len + 1..).unwrap_or_default(),
    );
    if word.eq_ignore_ascii_case(b"SEARCH") {
        return after
            .split(|&c| c == b' ')
            .filter(|n| !n.is_empty())
            .map(|n| number_of(n, b))
            .collect::<Result<_, _>>()
            .map(Response::Search);
    }
    if !word.eq_ignore_ascii_case(b"OK") {
        return Ok(Response::Other);
    }
    let Some(code) = after.strip_prefix(b"[") else {
        return Ok(Response::Other);
    };
    let end = memchr(b']', code).ok_or_else(|| malformed("response code", b))?;
    let code = &code[..end];
    let sp = memchr(b' ', code).unwrap_or(code.len());
    let (name, value) = (&code[..sp], code.get(sp + 1..).unwrap_or_default());
    if name.eq_ignore_ascii_case(b"UIDVALIDITY") {
        number_of(value, b).map(Response::UidValidity)
    } else if name.eq_ignore_ascii_case(b"UIDNEXT") {
        number_of(value, b).map(Response::UidNext)
    } else {
        Ok(Response::Other)
    }
}

/// `digits` as a 32-bit number (IMAP's nz-number and number), or the response is malformed.
fn number_of(digits: &[u8], b: &[u8]) -> Result<u32, WireError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed("number", b));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| malformed("number", b))
}

/// atom-char of RFC 3501: not a space, control, `(`, `)`, `{`, `%`, `*`, `"`, `\` or `]`.
fn is_atom_char(c: u8) -> bool {
    c > b' ' && c < 0x7f && !b"(){%*\"\\]".contains(&c)
}

/// A position in a FETCH response's attribute list.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let yes = self.peek() == Some(c);
        self.i += usize::from(yes);
        yes
    }

    fn expect(&mut self, c: u8) -> Result<(), WireError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(malformed(
                &format!("expected {:?} at {}", c as char, self.i),
                self.b,
            ))
        }
    }

    /// An atom (or a number, or NIL): its bytes.
    fn atom(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(|c| is_atom_char(c) && c != b'[') {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    fn number(&mut self) -> Result<u32, WireError> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| malformed("number", self.b))
    }

    /// A quoted string's content, escapes left as they are (callers read no escaped text).
    fn quoted(&mut self) -> Result<&'a [u8], WireError> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(&self.b[start..self.i - 1]);
                }
                Some(b'\\') => self.i += 2,
                Some(_) => self.i += 1,
                None => return Err(malformed("unterminated string", self.b)),
            }
        }
    }

    /// A literal's content: `{n}` CRLF and n bytes (framing made sure they are there).
    fn literal(&mut self) -> Result<&'a [u8], WireError> {
        self.expect(b'{')?;
        let size = self.number()? as usize;
        self.eat(b'+');
        self.expect(b'}')?;
        self.eat(b'\r');
        self.expect(b'\n')?;
        let start = self.i;
        let end = start
            .checked_add(size)
            .filter(|end| *end <= self.b.len())
            .ok_or_else(|| malformed("short literal", self.b))?;
        self.i = end;
        Ok(&self.b[start..end])
    }

    /// An nstring: NIL, a quoted string or a literal.
    fn nstring(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        match self.peek() {
            Some(b'"') => self.quoted().map(Some),
            Some(b'{') => self.literal().map(Some),
            _ => {
                let atom = self.atom();
                if atom.eq_ignore_ascii_case(b"NIL") {
                    Ok(None)
                } else {
                    Err(malformed("expected a string", self.b))
                }
            }
        }
    }

    /// Skips any value: an atom or number, a string, a literal, or a list of values.
    fn skip_value(&mut self) -> Result<(), WireError> {
        match self.peek() {
            Some(b'"') => self.quoted().map(drop),
            Some(b'{') => self.literal().map(drop),
            Some(b'(') => {
                self.i += 1;
                loop {
                    while self.eat(b' ') {}
                    if self.eat(b')') {
                        return Ok(());
                    }
                    if self.peek().is_none() {
                        return Err(malformed("unterminated list", self.b));
                    }
                    self.skip_value()?;
                }
            }
            Some(b'\\') => {
                // A flag: `\Seen`, `\*`.
                self.i += 1;
                if !self.eat(b'*') {
                    self.atom();
                }
                Ok(())
            }
            Some(_) => {
                if self.atom().is_empty() {
                    Err(malformed("unexpected byte", self.b))
                } else {
                    Ok(())
                }
            }
            None => Err(malformed("missing value", self.b)),
        }
    }

    /// A section's text between `[` and `]`, then a partial's `<n>` if any.
    fn section(&mut self) -> Result<&'a [u8], WireError> {
        self.expect(b'[')?;
        let start = self.i;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b']') if depth == 0 => break,
                Some(b'(') => depth += 1,
                Some(b')') => depth = depth.saturating_sub(1),
                Some(b'"') => {
                    self.quoted()?;
                    continue;
                }
                Some(_) => {}
                None => return Err(malformed("unterminated section", self.b)),
            }
            self.i += 1;
        }
        let text = &self.b[start..self.i];
        self.i += 1;
        if self.eat(b'<') {
            self.number()?;
            self.expect(b'>')?;
        }
        Ok(text)
    }
}

/// Reads the attribute list of a FETCH response (from its `(`).
fn parse_fetch(b: &[u8]) -> Result<FetchAttrs<'_>, WireError> {
    let mut c = Cursor { b, i: 0 };
    let mut out = FetchAttrs::default();
    c.expect(b'(')?;
    loop {
        while c.eat(b' ') {}
        if c.eat(b')') {
            return Ok(out);
        }
        let name = c.atom();
        if name.is_empty() {
            return Err(malformed("attribute name", b));
        }
        let section = if c.peek() == Some(b'[') {
            Some(c.section()?)
        } else {
            None
        };
        c.expect(b' ')?;
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        match section {
            None if is("UID") => {
                let uid = c.number()?;
                out.uid = out.uid.or(Some(uid));
            }
            None if is("INTERNALDATE") => {
                let date = c.quoted()?;
                out.internal_date = out.internal_date.or_else(|| std::str::from_utf8(date).ok());
            }
            None if is("RFC822.HEADER") => out.header = out.header.or(c.nstring()?),
            None if is("RFC822") => out.body = out.body.or(c.nstring()?),
            Some(s) if is("BODY") && s.is_empty() => out.body = out.body.or(c.nstring()?),
            Some(s) if is("BODY") && s.len() >= 6 && s[..6].eq_ignore_ascii_case(b"HEADER") => {
                out.header = out.header.or(c.nstring()?);
            }
            _ => c.skip_value()?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(b: &str) -> FetchAttrs<'_> {
        match parse_response(b.as_bytes()).unwrap() {
            Response::Fetch(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_what_a_scan_needs_of_a_fetch_response() {
        let fields = "Message-ID: <m1@sender.test>\r\nX-Hearth-Mark: v1 abc\r\n\r\n";
        let raw = format!(
            "* 3 FETCH (UID 7 INTERNALDATE \"30-Nov-2026 09:12:40 +0000\" \
             BODY[HEADER.FIELDS (MESSAGE-ID X-HEARTH-MARK)] {{{}}}\r\n{fields})\r\n",
            fields.len()
        );
        assert_eq!(
            fetch(&raw),
            FetchAttrs {
                uid: Some(7),
                internal_date: Some("30-Nov-2026 09:12:40 +0000"),
                header: Some(fields.as_bytes()),
                body: None,
            }
        );
        // Other attributes, in any order and case, are skipped; the first of each is kept.
        let f = fetch(
            "* 12 fetch (FLAGS (\\Seen \\Flagged $Label) X-GM-LABELS (\"\\\\Important\" \"a b\") \
             MODSEQ (12345) uid 9 RFC822.SIZE 2048 BODY[]<0> {4}\r\nabcd BODY[1.HEADER] \
             \"ignored\" rfc822.header NIL UID 10 ENVELOPE (\"d\" NIL ((NIL NIL \"a\" \"b\")) \
             NIL) INTERNALDATE \"1-Dec-2026 00:00:00 -0500\")\r\n",
        );
        assert_eq!(
            f,
            FetchAttrs {
                uid: Some(9),
                internal_date: Some("1-Dec-2026 00:00:00 -0500"),
                header: None,
                body: Some(b"abcd"),
            }
        );
        assert_eq!(fetch("* 1 FETCH (RFC822 \"x\")\r\n").body, Some(&b"x"[..]));
        assert_eq!(
            fetch("* 1 FETCH (BODY[HEADER] {2}\r\nab)\r\n").header,
            Some(&b"ab"[..])
        );
    }

    #[test]
    fn reads_tagged_answers_and_skips_other_responses() {
        assert_eq!(
            parse_response(b"A0007 OK Fetch completed (0.004 + 0.000 secs).\r\n").unwrap(),
            Response::Done {
                tag: "A0007",
                status: Status::Ok,
                text: "Fetch completed (0.004 + 0.000 secs).",
            }
        );
        assert_eq!(
            parse_response(b"A0008 no [TRYCREATE] Mailbox doesn't exist\r\n").unwrap(),
            Response::Done {
                tag: "A0008",
                status: Status::No,
                text: "[TRYCREATE] Mailbox doesn't exist",
            }
        );
        assert!(matches!(
            parse_response(b"A1 BAD\r\n").unwrap(),
            Response::Done {
                status: Status::Bad,
                text: "",
                ..
            }
        ));
        // What a SELECT and a SEARCH tell.
        for (raw, read) in [
            (&b"* 1001 EXISTS\r\n"[..], Response::Exists(1001)),
            (b"* 0 exists\r\n", Response::Exists(0)),
            (
                b"* OK [UIDVALIDITY 1764500000] UIDs valid\r\n",
                Response::UidValidity(1_764_500_000),
            ),
            (
                b"* ok [uidnext 9] Predicted next UID\r\n",
                Response::UidNext(9),
            ),
            (b"* OK [UIDNEXT 9]\r\n", Response::UidNext(9)),
            (b"* SEARCH 1 2 3\r\n", Response::Search(vec![1, 2, 3])),
            (b"* SEARCH\r\n", Response::Search(vec![])),
            (b"* search 7 \r\n", Response::Search(vec![7])),
        ] {
            assert_eq!(parse_response(raw).unwrap(), read, "{raw:?}");
        }
        for other in [
            &b"* 4 EXPUNGE\r\n"[..],
            b"* 2 RECENT\r\n",
            b"* FLAGS (\\Seen \\Flagged)\r\n",
            b"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.\r\n",
            b"* OK [HIGHESTMODSEQ 5] Highest\r\n",
            b"* OK Still here\r\n",
            b"* NO [ALERT] Mailbox is almost full\r\n",
            b"* ESEARCH (TAG \"A1\") UID ALL 1:3\r\n",
            b"+ go ahead\r\n",
        ] {
            assert_eq!(parse_response(other).unwrap(), Response::Other, "{other:?}");
        }
        for bad in [
            // A number that is none, or more than 32 bits: the session cannot be trusted.
            &b"* OK [UIDVALIDITY x] no\r\n"[..],
            b"* OK [UIDNEXT 99999999999] big\r\n",
            b"* OK [UIDNEXT 9 unterminated\r\n",
            b"* SEARCH 1 two\r\n",
            b"* 99999999999 EXISTS\r\n",
            // The middle of a response is no response: the session is out of step.
            b"1 EXISTS\r\n",
            b"A1 MAYBE\r\n",
            b"\r\n",
            b"(x) OK\r\n",
        ] {
            assert!(parse_response(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "* 1 FETCH (UID x)\r\n",
            "* 1 FETCH (UID 1\r\n",
            "* 1 FETCH (INTERNALDATE \"1-Dec\r\n",
            "* 1 FETCH (BODY[HEADER] {9}\r\nab)\r\n",
            "* 1 FETCH (BODY[HEADER] (a))\r\n",
        ] {
            assert!(parse_response(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn frames_responses_across_literals_and_lines() {
        let two = b"* 1 FETCH (BODY[] {5}\r\na\r\nb} UID 3)\r\nA1 OK done\r\n";
        let Framed::Complete(first) = frame(two).unwrap() else {
            panic!()
        };
        assert_eq!(
            &two[..first],
            b"* 1 FETCH (BODY[] {5}\r\na\r\nb} UID 3)\r\n"
        );
        let Framed::Complete(second) = frame(&two[first..]).unwrap() else {
            panic!()
        };
        assert_eq!(first + second, two.len());
        // Every prefix is incomplete, and says how much it needs at least.
        for cut in 0..first {
            match frame(&two[..cut]).unwrap() {
                Framed::Needs(n) => assert!(n > cut && n <= first, "{cut}: {n}"),
                Framed::Complete(n) => panic!("{cut}: complete at {n}"),
            }
        }
        assert_eq!(literal_size(b"x {12}"), Some(12));
        assert_eq!(literal_size(b"x {12+}"), Some(12));
        assert_eq!(literal_size(b"x {}"), None);
        assert_eq!(literal_size(b"x {1a}"), None);
        assert_eq!(literal_size(b"x 12}"), None);
    }

    /// A stream that hands out its bytes a few at a time.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self
                .step
                .min(self.data.len() - self.at)
                .min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn reads_responses_in_any_pieces_and_gives_back_what_follows() {
        let big = "x".repeat(150_000);
        let mut data = String::new();
        for uid in 1..=300 {
            data += &format!(
                "* {uid} FETCH (UID {uid} BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\nMessage-ID: \
                 <{uid}@t>\r\n\r\n)\r\n",
                "Message-ID: <@t>\r\n\r\n".len() + uid.to_string().len()
            );
        }
        data += &format!(
            "* 301 FETCH (UID 301 BODY[] {{{}}}\r\n{big})\r\n",
            big.len()
        );
        data += "* 302 EXISTS\r\nA5 OK done\r\n* 303 EXISTS\r\nA6 O";
        for step in [1, 7, 1000, 20_000, 1 << 20] {
            let mut stream = Trickle {
                data: data.clone().into_bytes(),
                at: 0,
                step,
            };
            let mut reader = Reader::default();
            let mut uids = vec![];
            loop {
                match reader.next(&mut stream).await.unwrap() {
                    Response::Fetch(f) => {
                        let uid = f.uid.unwrap();
                        if uid == 301 {
                            assert_eq!(f.body.map(<[u8]>::len), Some(big.len()));
                        } else {
                            let want = format!("Message-ID: <{uid}@t>\r\n\r\n");
                            assert_eq!(f.header, Some(want.as_bytes()));
                        }
                        uids.push(uid);
                    }
                    Response::Done { tag, status, .. } => {
                        assert_eq!((tag, status), ("A5", Status::Ok));
                        break;
                    }
                    _ => {}
                }
            }
            assert_eq!(uids, (1..=301).collect::<Vec<_>>(), "step {step}");
            // What was read past the answer, and what is still in the stream, in order.
            let mut rest = reader.finish();
            rest.extend_from_slice(&stream.data[stream.at..]);
            assert_eq!(rest, b"* 303 EXISTS\r\nA6 O", "step {step}");
        }
        let mut cut = Trickle {
            data: b"* 1 FETCH (UID 1".to_vec(),
            at: 0,
            step: 4,
        };
        let mut reader = Reader::default();
        assert!(matches!(
            reader.next(&mut cut).await,
            Err(WireError::Closed)
        ));
    }
}
