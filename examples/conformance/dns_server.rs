//! A tiny authoritative DNS server for test zones: UDP and TCP on 127.0.0.1, a random port,
//! answers built with hickory-proto. It serves one [`Zone`] and stops when dropped.
//!
//! Zone semantics follow the OpenSPF test-suite drivers: a name's records are kept in order; a
//! `Timeout` entry makes a query time out (no answer at all) unless a record of the asked type
//! came before it; `ServFail` answers SERVFAIL; a CNAME is followed inside the zone; a name that
//! exists answers NOERROR with no records for other types; an unknown name is NXDOMAIN.
//!
//! Also compiled into the library's unit tests (`preflight::dns`) to test `DnsClient`.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// One record of a test zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(u16, String),
    Ptr(String),
    /// The character-strings of one TXT record, as raw bytes.
    Txt(Vec<Vec<u8>>),
    Cname(String),
    /// Queries of this name that reach this entry get no answer.
    Timeout,
    /// Queries of this name get SERVFAIL.
    #[allow(dead_code)] // the suites use `Zone::servfail_label`; the DnsClient tests use this
    ServFail,
}

impl Rec {
    fn record_type(&self) -> Option<RecordType> {
        Some(match self {
            Self::A(_) => RecordType::A,
            Self::Aaaa(_) => RecordType::AAAA,
            Self::Mx(..) => RecordType::MX,
            Self::Ptr(_) => RecordType::PTR,
            Self::Txt(_) => RecordType::TXT,
            Self::Cname(_) => RecordType::CNAME,
            Self::Timeout | Self::ServFail => return None,
        })
    }

    fn rdata(&self) -> Option<RData> {
        Some(match self {
            Self::A(ip) => RData::A(A(*ip)),
            Self::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Self::Mx(preference, exchange) => RData::MX(MX::new(*preference, name(exchange))),
            Self::Ptr(target) => RData::PTR(PTR(name(target))),
            Self::Txt(strings) => {
                RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
            }
            Self::Cname(target) => RData::CNAME(CNAME(name(target))),
            Self::Timeout | Self::ServFail => return None,
        })
    }
}

/// A name as raw labels (test names may hold `:`, `/`, spaces, `%`); `""` is the root.
fn name(text: &str) -> Name {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Name::root();
    }
    Name::from_labels(text.split('.').map(str::as_bytes)).unwrap_or_else(|_| Name::root())
}

fn key(text: &str) -> String {
    text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase()
}

fn name_key(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

#[derive(Debug, Clone, Default)]
pub struct Zone {
    names: HashMap<String, Vec<Rec>>,
    /// Any query for a name with this label answers SERVFAIL (mail-auth's `_dns_error`).
    servfail_label: Option<String>,
}

/// What the server does with one query.
enum Answer {
    Reply(ResponseCode, Vec<Record>),
    Silence,
}

impl Zone {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a record to `name` (creating the name).
    pub fn add(&mut self, name: &str, rec: Rec) {
        self.names.entry(key(name)).or_default().push(rec);
    }

    /// Makes `name` exist, possibly without records.
    pub fn touch(&mut self, name: &str) {
        self.names.entry(key(name)).or_default();
    }

    /// Replaces every record of `rec`'s type at `name` with `recs`.
    pub fn replace(&mut self, name: &str, rtype: RecordType, recs: Vec<Rec>) {
        let entry = self.names.entry(key(name)).or_default();
        entry.retain(|r| r.record_type() != Some(rtype));
        entry.extend(recs);
    }

    pub fn servfail_label(&mut self, label: &str) {
        self.servfail_label = Some(label.to_ascii_lowercase());
    }

    fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        let mut records = Vec::new();
        match self.resolve(qname, qtype, 0, &mut records) {
            Some(code) => Answer::Reply(code, records),
            None => Answer::Silence,
        }
    }

    /// Appends the answer for `qname` to `out`; `None` means "do not answer".
    fn resolve(
        &self,
        qname: &Name,
        qtype: RecordType,
        depth: u8,
        out: &mut Vec<Record>,
    ) -> Option<ResponseCode> {
        let k = name_key(qname);
        if let Some(label) = &self.servfail_label
            && k.split('.').any(|l| l == label)
        {
            return Some(ResponseCode::ServFail);
        }
        let Some(recs) = self.names.get(&k) else {
            return Some(ResponseCode::NXDomain);
        };
        let mut found = false;
        for rec in recs {
            match rec {
                Rec::Timeout if found => break,
                Rec::Timeout => return None,
                Rec::ServFail => return Some(ResponseCode::ServFail),
                Rec::Cname(target) if qtype != RecordType::CNAME => {
                    out.push(Record::from_rdata(qname.clone(), 60, rec.rdata()?));
                    if depth >= 8 {
                        return Some(ResponseCode::ServFail);
                    }
                    return self.resolve(&name(target), qtype, depth + 1, out);
                }
                _ if rec.record_type() == Some(qtype) => {
                    out.push(Record::from_rdata(qname.clone(), 60, rec.rdata()?));
                    found = true;
                }
                _ => {}
            }
        }
        Some(ResponseCode::NoError)
    }

    /// The wire response to one query message; `None` to stay silent. UDP answers larger than
    /// the client accepts are truncated (the client then asks again over TCP).
    fn respond(&self, request: &[u8], udp: bool) -> Option<Vec<u8>> {
        let req = Message::from_vec(request).ok()?;
        if req.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        let Some(query) = req.queries.first().cloned() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return resp.to_vec().ok();
        };
        match self.answer(query.name(), query.query_type()) {
            Answer::Silence => return None,
            Answer::Reply(code, records) => {
                resp.metadata.response_code = code;
                resp.add_answers(records);
            }
        }
        resp.add_query(query);
        let mut max = 512;
        if let Some(edns) = &req.edns {
            max = usize::from(edns.max_payload()).max(512);
            let mut ours = Edns::new();
            ours.set_max_payload(4096);
            resp.set_edns(ours);
        }
        let bytes = resp.to_vec().ok()?;
        if udp && bytes.len() > max {
            resp.answers.clear();
            resp.metadata.truncation = true;
            return resp.to_vec().ok();
        }
        Some(bytes)
    }
}

/// A running server; dropping it stops it.
pub struct ZoneServer {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl ZoneServer {
    /// Serves `zone` on 127.0.0.1, UDP and TCP on the same random port.
    pub async fn start(zone: Arc<Zone>) -> io::Result<Self> {
        let mut last_err = None;
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0").await?;
            let addr = udp.local_addr()?;
            match TcpListener::bind(addr).await {
                Ok(tcp) => {
                    let tasks = vec![
                        tokio::spawn(serve_udp(udp, zone.clone())),
                        tokio::spawn(serve_tcp(tcp, zone)),
                    ];
                    return Ok(Self { addr, tasks });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no free port")))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ZoneServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Zone>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(resp) = zone.respond(&buf[..len], true) {
            let _ = socket.send_to(&resp, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Zone>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_tcp_conn(stream, zone.clone()));
        }
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, zone: Arc<Zone>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut msg = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        if let Some(resp) = zone.respond(&msg, false) {
            let Ok(len) = u16::try_from(resp.len()) else {
                continue;
            };
            let mut out = len.to_be_bytes().to_vec();
            out.extend_from_slice(&resp);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}
