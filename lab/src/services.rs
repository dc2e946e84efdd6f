//! What the lab's target says on each TCP port: the port table
//! ([`TCP_SERVICES`]) and one small protocol state machine per service
//! ([`Session`]) that turns bytes received into bytes to send. Pure functions of
//! their input: no sockets here (the responder owns those), so tests and other
//! crates can replay a conversation without a network.
//!
//! To add a service: add a [`Kind`], a row in [`TCP_SERVICES`] (port, nmap-style
//! service name, product, version) and its arms in [`Session::greeting`] and
//! [`Session::input`].

use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::udp::{udp_reply, udp_service, UdpKind, UdpService, UDP_SERVICES};

/// How a service behaves on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// vsftpd: greets, answers USER/PASS/QUIT.
    Ftp,
    /// OpenSSH: sends its identification line first.
    Ssh,
    /// Postfix: greets, answers EHLO/HELO/QUIT.
    Smtp,
    /// An HTTP server that waits for a request; `server` is its `Server:` header.
    Http {
        /// Value of the `Server:` header.
        server: &'static str,
    },
    /// Dovecot POP3: greets, answers CAPA/QUIT.
    Pop3,
    /// Dovecot IMAP: greets, answers CAPABILITY/LOGOUT.
    Imap,
    /// Redis: answers PING, INFO, QUIT (RESP or inline commands).
    Redis,
    /// TLS 1.2 server: answers a ClientHello with ServerHello and its certificate.
    Tls,
    /// MySQL 8.0: sends a protocol-10 handshake first, rejects anything but a login.
    Mysql,
    /// PostgreSQL: waits for a StartupMessage, asks for SCRAM-SHA-256 authentication.
    Postgres,
    /// Accepts and closes without a word (a port the table does not know).
    Silent,
}

/// One row of the port table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpService {
    /// TCP port.
    pub port: u16,
    /// nmap-style service name.
    pub name: &'static str,
    /// Product a version detector should report.
    pub product: &'static str,
    /// Version a version detector should report ("" when the banner shows none).
    pub version: &'static str,
    /// Wire behaviour.
    pub kind: Kind,
}

/// SSH identification line of port 22.
pub const SSH_BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";
/// Redis version reported by INFO on port 6379.
pub const REDIS_VERSION: &str = "7.0.15";
/// Subject of the certificate served on 443.
pub const TLS_CERT_SUBJECT: &str = "CN=lab.prtip.test, O=prtip lab";
/// The self-signed certificate (DER) served on 443. Made once with
/// `openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj "/CN=lab.prtip.test/O=prtip lab"
/// -addext "subjectAltName=DNS:lab.prtip.test,DNS:*.lab.prtip.test" -days 36500 -outform DER`;
/// the private key was thrown away (the lab never completes a handshake).
pub const TLS_CERT_DER: &[u8] = include_bytes!("lab-cert.der");
/// MySQL server version announced in the handshake on port 3306.
pub const MYSQL_VERSION: &str = "8.0.36";
/// Host name the mail services use in their greetings.
pub const MAIL_HOST: &str = "mx.prtip.test";

/// The port table: services the lab runs when their port is in `tcp_ports`.
pub static TCP_SERVICES: &[TcpService] = &[
    TcpService {
        port: 21,
        name: "ftp",
        product: "vsftpd",
        version: "3.0.3",
        kind: Kind::Ftp,
    },
    TcpService {
        port: 22,
        name: "ssh",
        product: "OpenSSH",
        version: "9.2p1 Debian 2+deb12u3",
        kind: Kind::Ssh,
    },
    TcpService {
        port: 25,
        name: "smtp",
        product: "Postfix smtpd",
        version: "",
        kind: Kind::Smtp,
    },
    TcpService {
        port: 80,
        name: "http",
        product: "nginx",
        version: "1.22.1",
        kind: Kind::Http {
            server: "nginx/1.22.1",
        },
    },
    TcpService {
        port: 110,
        name: "pop3",
        product: "Dovecot pop3d",
        version: "",
        kind: Kind::Pop3,
    },
    TcpService {
        port: 143,
        name: "imap",
        product: "Dovecot imapd",
        version: "",
        kind: Kind::Imap,
    },
    TcpService {
        port: 443,
        name: "https",
        product: "TLS 1.2 (certificate CN=lab.prtip.test)",
        version: "",
        kind: Kind::Tls,
    },
    TcpService {
        port: 3306,
        name: "mysql",
        product: "MySQL",
        version: MYSQL_VERSION,
        kind: Kind::Mysql,
    },
    TcpService {
        port: 5432,
        name: "postgresql",
        product: "PostgreSQL DB",
        version: "",
        kind: Kind::Postgres,
    },
    TcpService {
        port: 6379,
        name: "redis",
        product: "Redis key-value store",
        version: REDIS_VERSION,
        kind: Kind::Redis,
    },
    TcpService {
        port: 8080,
        name: "http",
        product: "Apache httpd",
        version: "2.4.62",
        kind: Kind::Http {
            server: "Apache/2.4.62 (Debian)",
        },
    },
];

/// The service the lab runs on a TCP port, if the table knows it.
pub fn tcp_service(port: u16) -> Option<&'static TcpService> {
    TCP_SERVICES.iter().find(|s| s.port == port)
}

/// Behaviour of a TCP port: the table's, or [`Kind::Silent`].
pub fn tcp_kind(port: u16) -> Kind {
    tcp_service(port).map(|s| s.kind).unwrap_or(Kind::Silent)
}

/// What to send after some input, and whether to close afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Bytes to send (may be empty).
    pub reply: Vec<u8>,
    /// Close the connection after sending.
    pub close: bool,
}

impl Output {
    fn more() -> Output {
        Output::default()
    }
    fn close(reply: impl Into<Vec<u8>>) -> Output {
        Output {
            reply: reply.into(),
            close: true,
        }
    }
}

/// Most bytes a session buffers while waiting for a complete line/request.
pub const MAX_INPUT: usize = 16 * 1024;

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    kind: Kind,
    inbuf: Vec<u8>,
    tls_hello_done: bool,
}

impl Session {
    /// A new connection to a service of this kind.
    pub fn new(kind: Kind) -> Session {
        Session {
            kind,
            inbuf: Vec::new(),
            tls_hello_done: false,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// What the server sends first, right after accept (servers that speak first).
    pub fn greeting(&self) -> Option<Vec<u8>> {
        let s = match self.kind {
            Kind::Ftp => "220 (vsFTPd 3.0.3)\r\n".to_string(),
            Kind::Ssh => format!("{SSH_BANNER}\r\n"),
            Kind::Smtp => format!("220 {MAIL_HOST} ESMTP Postfix (Debian/GNU)\r\n"),
            Kind::Pop3 => "+OK Dovecot ready.\r\n".to_string(),
            Kind::Imap => format!("* OK [CAPABILITY {IMAP_CAPS}] Dovecot ready.\r\n"),
            Kind::Mysql => return Some(mysql_handshake()),
            Kind::Http { .. } | Kind::Redis | Kind::Tls | Kind::Postgres | Kind::Silent => {
                return None
            }
        };
        Some(s.into_bytes())
    }

    /// Feed bytes received from the client; returns what to send back.
    pub fn input(&mut self, data: &[u8]) -> Output {
        self.inbuf.extend_from_slice(data);
        let out = match self.kind {
            Kind::Http { server } => http(&mut self.inbuf, server),
            Kind::Redis => redis(&mut self.inbuf),
            Kind::Tls => tls(&mut self.inbuf, &mut self.tls_hello_done),
            Kind::Silent => Output::close(Vec::new()),
            Kind::Mysql => mysql(&mut self.inbuf),
            Kind::Postgres => postgres(&mut self.inbuf),
            Kind::Ftp | Kind::Ssh | Kind::Smtp | Kind::Pop3 | Kind::Imap => {
                let mut out = Output::default();
                while let Some(line) = take_line(&mut self.inbuf) {
                    let o = line_reply(self.kind, &line);
                    out.reply.extend_from_slice(&o.reply);
                    if o.close {
                        out.close = true;
                        break;
                    }
                }
                out
            }
        };
        if !out.close && self.inbuf.len() > MAX_INPUT {
            return Output::close(out.reply);
        }
        out
    }
}

/// A MySQL packet: 3-byte little-endian length, sequence number, payload.
fn mysql_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let l = payload.len() as u32;
    let mut v = vec![l as u8, (l >> 8) as u8, (l >> 16) as u8, seq];
    v.extend_from_slice(payload);
    v
}

/// The protocol-10 handshake MySQL 8.0 sends on accept (caching_sha2_password).
fn mysql_handshake() -> Vec<u8> {
    let mut p = vec![0x0a];
    p.extend_from_slice(MYSQL_VERSION.as_bytes());
    p.push(0);
    p.extend_from_slice(&1207u32.to_le_bytes()); // connection id
    p.extend_from_slice(b"\x1a4Kp%w\x0b\x02"); // auth data part 1 (8 bytes)
    p.push(0);
    p.extend_from_slice(&0xffffu16.to_le_bytes()); // capabilities (low)
    p.push(0xff); // utf8mb4_0900_ai_ci
    p.extend_from_slice(&0x0002u16.to_le_bytes()); // status: autocommit
    p.extend_from_slice(&0xdfffu16.to_le_bytes()); // capabilities (high)
    p.push(21); // auth data length
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"m\x0e.Q8\x1bV`\x05\x17r\x01\x00"); // auth data part 2 (13 bytes)
    p.extend_from_slice(b"caching_sha2_password\x00");
    mysql_packet(0, &p)
}

fn mysql(buf: &mut Vec<u8>) -> Output {
    if buf.len() < 4 {
        return Output::more();
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], 0]) as usize;
    if buf.len() < 4 + len && len < MAX_INPUT {
        return Output::more();
    }
    // The lab has no accounts: every login (or junk) is refused, as mysqld does.
    buf.clear();
    let mut err = vec![0xff];
    err.extend_from_slice(&1043u16.to_le_bytes()); // ER_HANDSHAKE_ERROR
    err.extend_from_slice(b"#08S01Bad handshake");
    Output::close(mysql_packet(2, &err))
}

fn pg_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn postgres(buf: &mut Vec<u8>) -> Output {
    if buf.len() < 8 {
        return Output::more();
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(8..=10_000).contains(&len) {
        buf.clear();
        return Output::close(pg_message(
            b'E',
            b"SFATAL\0VFATAL\0C08P01\0Minvalid length of startup packet\0Fpostmaster.c\0L2004\0RProcessStartupPacket\0\0",
        ));
    }
    if buf.len() < len {
        return Output::more();
    }
    let code = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    buf.drain(..len);
    match code {
        // SSLRequest / GSSENCRequest: not offered here
        80877103 | 80877104 => Output {
            reply: b"N".to_vec(),
            close: false,
        },
        // protocol 3.0 StartupMessage: ask for SASL (SCRAM-SHA-256), as PostgreSQL 14+ does
        0x0003_0000 => Output {
            reply: pg_message(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0"),
            close: false,
        },
        _ => Output::close(pg_message(
            b'E',
            b"SFATAL\0VFATAL\0C0A000\0Munsupported frontend protocol\0Fpostmaster.c\0L2207\0RProcessStartupPacket\0\0",
        )),
    }
}

const IMAP_CAPS: &str =
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN";

/// Remove and return the first complete line (without CR LF) from `buf`.
fn take_line(buf: &mut Vec<u8>) -> Option<String> {
    let pos = buf.iter().position(|&b| b == b'\n')?;
    let mut line: Vec<u8> = buf.drain(..=pos).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

fn verb(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn line_reply(kind: Kind, line: &str) -> Output {
    let v = verb(line);
    let reply = |s: String| Output {
        reply: s.into_bytes(),
        close: false,
    };
    match kind {
        Kind::Ssh => {
            if line.starts_with("SSH-") {
                // A real sshd would now send KEXINIT; the lab stops here.
                Output::close(Vec::new())
            } else {
                Output::close(b"Invalid SSH identification string.\r\n".to_vec())
            }
        }
        Kind::Ftp => match v.as_str() {
            "USER" => reply("331 Please specify the password.\r\n".into()),
            "PASS" => reply("530 Login incorrect.\r\n".into()),
            "SYST" => reply("215 UNIX Type: L8\r\n".into()),
            "FEAT" => reply(
                "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n211 End\r\n"
                    .into(),
            ),
            "QUIT" => Output::close(b"221 Goodbye.\r\n".to_vec()),
            "" => Output::more(),
            _ => reply("530 Please login with USER and PASS.\r\n".into()),
        },
        Kind::Smtp => match v.as_str() {
            "EHLO" => reply(format!(
                "250-{MAIL_HOST}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
            )),
            "HELO" => reply(format!("250 {MAIL_HOST}\r\n")),
            "NOOP" => reply("250 2.0.0 Ok\r\n".into()),
            "RSET" => reply("250 2.0.0 Ok\r\n".into()),
            "QUIT" => Output::close(b"221 2.0.0 Bye\r\n".to_vec()),
            "" => Output::more(),
            _ => reply("502 5.5.2 Error: command not recognized\r\n".into()),
        },
        Kind::Pop3 => match v.as_str() {
            "CAPA" => reply(
                "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n"
                    .into(),
            ),
            "USER" => reply("+OK\r\n".into()),
            "PASS" => reply("-ERR [AUTH] Authentication failed.\r\n".into()),
            "QUIT" => Output::close(b"+OK Logging out\r\n".to_vec()),
            "" => Output::more(),
            _ => reply("-ERR Unknown command.\r\n".into()),
        },
        Kind::Imap => {
            let mut words = line.split_whitespace();
            let tag = words.next().unwrap_or("*");
            let cmd = words.next().unwrap_or("").to_ascii_uppercase();
            match cmd.as_str() {
                "CAPABILITY" => reply(format!(
                    "* CAPABILITY {IMAP_CAPS}\r\n{tag} OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
                )),
                "NOOP" => reply(format!("{tag} OK NOOP completed.\r\n")),
                "LOGIN" => reply(format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")),
                "LOGOUT" => Output::close(
                    format!("* BYE Logging out\r\n{tag} OK Logout completed.\r\n").into_bytes(),
                ),
                _ if line.trim().is_empty() => Output::more(),
                _ => reply(format!("{tag} BAD Error in IMAP command received by server.\r\n")),
            }
        }
        _ => Output::close(Vec::new()),
    }
}

/// `Date:` header value (IMF-fixdate) for a time.
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn http_page(server: &str, status: u16) -> (&'static str, String) {
    let nginx = server.starts_with("nginx");
    match (status, nginx) {
        (200, true) => ("OK", "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking. Further configuration is required.</p>\n</body>\n</html>\n".to_string()),
        (200, false) => ("OK", "<!DOCTYPE html>\n<html>\n<head><title>Apache2 Debian Default Page: It works</title></head>\n<body><h1>It works!</h1></body>\n</html>\n".to_string()),
        (s, true) => {
            let reason = reason(s);
            (reason, format!("<html>\r\n<head><title>{s} {reason}</title></head>\r\n<body>\r\n<center><h1>{s} {reason}</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n"))
        }
        (s, false) => {
            let reason = reason(s);
            (reason, format!("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{s} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n<hr>\n<address>{server} Server at lab.prtip.test Port 8080</address>\n</body></html>\n"))
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

fn http_response(server: &str, status: u16, head_only: bool) -> Vec<u8> {
    let (reason, body) = http_page(server, status);
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: {server}\r\nDate: {}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        http_date(SystemTime::now()),
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body.as_bytes());
    }
    r
}

fn http(buf: &mut Vec<u8>, server: &'static str) -> Output {
    if buf.is_empty() {
        return Output::more();
    }
    // Not HTTP at all (binary, a TLS hello, lower case junk): answer 400 at once.
    if !buf[0].is_ascii_uppercase() {
        return Output::close(http_response(server, 400, false));
    }
    let Some(first_nl) = buf.iter().position(|&b| b == b'\n') else {
        return Output::more();
    };
    let line = String::from_utf8_lossy(&buf[..first_nl])
        .trim_end()
        .to_string();
    let parts: Vec<&str> = line.split(' ').collect();
    let valid = parts.len() == 3
        && parts[0].bytes().all(|b| b.is_ascii_uppercase())
        && parts[2].starts_with("HTTP/1.");
    if !valid {
        return Output::close(http_response(server, 400, false));
    }
    let end = buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n");
    if !end {
        return Output::more();
    }
    let (method, path) = (parts[0], parts[1]);
    let status = match method {
        "GET" | "HEAD" if path == "/" || path.starts_with("/?") || path == "/index.html" => 200,
        "GET" | "HEAD" => 404,
        "POST" | "OPTIONS" | "PUT" | "DELETE" | "PATCH" => 405,
        _ => 400,
    };
    buf.clear();
    Output::close(http_response(server, status, method == "HEAD"))
}

/// Parse one Redis command (RESP array of bulk strings, or an inline line).
/// `None` while incomplete; `Some(Err)` on a protocol error.
fn redis_command(buf: &mut Vec<u8>) -> Option<Result<Vec<String>, String>> {
    if buf.is_empty() {
        return None;
    }
    if buf[0] != b'*' {
        let line = take_line(buf)?;
        return Some(Ok(line.split_whitespace().map(str::to_string).collect()));
    }
    // *<n>\r\n then n × $<len>\r\n<bytes>\r\n
    let mut pos = 0usize;
    let read_line = |pos: &mut usize| -> Option<String> {
        let rel = buf[*pos..].iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&buf[*pos..*pos + rel])
            .trim_end_matches('\r')
            .to_string();
        *pos += rel + 1;
        Some(line)
    };
    let head = read_line(&mut pos)?;
    let n: usize = match head[1..].parse() {
        Ok(n) if n <= 1024 => n,
        _ => return Some(Err("Protocol error: invalid multibulk length".into())),
    };
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let l = read_line(&mut pos)?;
        let len: usize = match l.strip_prefix('$').and_then(|v| v.parse().ok()) {
            Some(len) if len <= MAX_INPUT => len,
            _ => {
                return Some(Err(format!(
                    "Protocol error: expected '$', got '{}'",
                    l.chars().next().unwrap_or(' ')
                )))
            }
        };
        if buf.len() < pos + len + 2 {
            return None;
        }
        args.push(String::from_utf8_lossy(&buf[pos..pos + len]).into_owned());
        pos += len + 2;
    }
    buf.drain(..pos);
    Some(Ok(args))
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

fn redis_info() -> String {
    let up = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() % 100_000)
        .unwrap_or(0);
    format!(
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:e3a62b1d0c1f6e7d\r\nredis_mode:standalone\r\nos:Linux 6.1.0-28-amd64 x86_64\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\ngcc_version:12.2.0\r\nprocess_id:1207\r\ntcp_port:6379\r\nuptime_in_seconds:{up}\r\nexecutable:/usr/bin/redis-server\r\nconfig_file:/etc/redis/redis.conf\r\n"
    )
}

fn redis(buf: &mut Vec<u8>) -> Output {
    let mut out = Output::default();
    while let Some(cmd) = redis_command(buf) {
        let args = match cmd {
            Ok(a) => a,
            Err(e) => {
                out.reply
                    .extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                out.close = true;
                return out;
            }
        };
        let Some(name) = args.first() else { continue };
        match name.to_ascii_uppercase().as_str() {
            "PING" => match args.get(1) {
                Some(m) => out.reply.extend_from_slice(&bulk(m)),
                None => out.reply.extend_from_slice(b"+PONG\r\n"),
            },
            "INFO" => out.reply.extend_from_slice(&bulk(&redis_info())),
            "ECHO" if args.len() == 2 => out.reply.extend_from_slice(&bulk(&args[1])),
            "QUIT" => {
                out.reply.extend_from_slice(b"+OK\r\n");
                out.close = true;
                return out;
            }
            _ => {
                let rest: Vec<String> = args[1..].iter().map(|a| format!("'{a}' ")).collect();
                out.reply.extend_from_slice(
                    format!(
                        "-ERR unknown command '{name}', with args beginning with: {}\r\n",
                        rest.concat()
                    )
                    .as_bytes(),
                );
            }
        }
    }
    out
}

/// Cipher suites the lab's TLS server accepts, best first: RSA key exchange
/// (so ServerHello, Certificate, ServerHelloDone is a complete first flight),
/// then ECDHE-RSA (first flight cut after the certificate).
const TLS_SUITES: &[u16] = &[
    0x009c, 0x009d, 0x002f, 0x0035, 0xc02f, 0xc030, 0xc013, 0xc014,
];

fn tls_alert(desc: u8) -> Vec<u8> {
    vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, desc]
}

/// What a ClientHello offers (the parts the lab needs).
struct ClientHello {
    version: u16,
    suites: Vec<u16>,
    /// `Some(list)` when the supported_versions extension is present.
    versions: Option<Vec<u16>>,
    /// The client signalled secure renegotiation (SCSV or renegotiation_info).
    secure_reneg: bool,
}

fn parse_client_hello(b: &[u8]) -> Option<ClientHello> {
    // handshake header: type(1) len(3)
    if b.len() < 4 || b[0] != 1 {
        return None;
    }
    let len = u32::from_be_bytes([0, b[1], b[2], b[3]]) as usize;
    let b = b.get(4..4 + len)?;
    let mut p = 0usize;
    let u8_at = |p: usize| b.get(p).copied();
    let u16_at = |p: usize| Some(u16::from_be_bytes([*b.get(p)?, *b.get(p + 1)?]));
    let version = u16_at(p)?;
    p += 2 + 32;
    p += 1 + u8_at(p)? as usize; // session id
    let n = u16_at(p)? as usize;
    p += 2;
    let suites: Vec<u16> = b
        .get(p..p + n)?
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    p += n;
    p += 1 + u8_at(p)? as usize; // compression methods
    let mut versions = None;
    let mut secure_reneg = false;
    if let Some(ext_len) = u16_at(p) {
        p += 2;
        let end = (p + ext_len as usize).min(b.len());
        while p + 4 <= end {
            let (ty, l) = (u16_at(p)?, u16_at(p + 2)? as usize);
            p += 4;
            if ty == 0xff01 {
                secure_reneg = true;
            }
            if ty == 43 {
                let list = b.get(p + 1..p + l)?;
                versions = Some(
                    list.chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect(),
                );
            }
            p += l;
        }
    }
    let secure_reneg = secure_reneg || suites.contains(&0x00ff);
    Some(ClientHello {
        version,
        suites,
        versions,
        secure_reneg,
    })
}

fn handshake_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let l = body.len() as u32;
    let mut v = vec![ty, (l >> 16) as u8, (l >> 8) as u8, l as u8];
    v.extend_from_slice(body);
    v
}

fn tls(buf: &mut Vec<u8>, hello_done: &mut bool) -> Output {
    if *hello_done {
        // The client's key exchange: the lab has no key to continue with.
        buf.clear();
        return Output::close(tls_alert(40));
    }
    if buf.len() < 5 {
        return Output::more();
    }
    if buf[0] != 0x16 || buf[1] != 0x03 {
        // Not a TLS handshake record (plain HTTP to 443, junk): alert and close.
        return Output::close(tls_alert(10));
    }
    let rec_len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if buf.len() < 5 + rec_len {
        return Output::more();
    }
    let Some(hello) = parse_client_hello(&buf[5..5 + rec_len]) else {
        buf.clear();
        return Output::close(tls_alert(50)); // decode_error
    };
    buf.clear();
    let offers_12 = match &hello.versions {
        Some(v) => v.contains(&0x0303),
        None => hello.version >= 0x0303,
    };
    if !offers_12 {
        return Output::close(tls_alert(70)); // protocol_version
    }
    let Some(&suite) = TLS_SUITES.iter().find(|s| hello.suites.contains(s)) else {
        return Output::close(tls_alert(40)); // handshake_failure
    };
    let mut sh = vec![0x03, 0x03];
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = seed | 1;
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sh.extend_from_slice(&x.to_be_bytes());
    }
    sh.push(0); // no session id
    sh.extend_from_slice(&suite.to_be_bytes());
    sh.push(0); // no compression
    if hello.secure_reneg {
        // extensions: renegotiation_info, empty (RFC 5746)
        sh.extend_from_slice(&[0x00, 0x05, 0xff, 0x01, 0x00, 0x01, 0x00]);
    }
    let der = TLS_CERT_DER;
    let cl = der.len() as u32;
    let total = cl + 3;
    let mut cert = vec![(total >> 16) as u8, (total >> 8) as u8, total as u8];
    cert.extend_from_slice(&[(cl >> 16) as u8, (cl >> 8) as u8, cl as u8]);
    cert.extend_from_slice(der);
    let mut hs = handshake_msg(2, &sh);
    hs.extend_from_slice(&handshake_msg(11, &cert));
    let rsa_kx = suite < 0xc000;
    if rsa_kx {
        hs.extend_from_slice(&handshake_msg(14, &[]));
    }
    let mut rec = vec![0x16, 0x03, 0x03, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    if rsa_kx {
        *hello_done = true;
        Output {
            reply: rec,
            close: false,
        }
    } else {
        rec.extend_from_slice(&tls_alert(40));
        Output::close(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk(port: u16, input: &[u8]) -> (Option<String>, String, bool) {
        let mut s = Session::new(tcp_kind(port));
        let g = s.greeting().map(|g| String::from_utf8(g).unwrap());
        let o = s.input(input);
        (g, String::from_utf8_lossy(&o.reply).into_owned(), o.close)
    }

    #[test]
    fn greetings_are_realistic() {
        assert_eq!(
            talk(22, b"").0.unwrap(),
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
        );
        assert_eq!(talk(21, b"").0.unwrap(), "220 (vsFTPd 3.0.3)\r\n");
        assert_eq!(
            talk(25, b"").0.unwrap(),
            "220 mx.prtip.test ESMTP Postfix (Debian/GNU)\r\n"
        );
        assert!(talk(110, b"").0.unwrap().starts_with("+OK Dovecot"));
        assert!(talk(143, b"")
            .0
            .unwrap()
            .starts_with("* OK [CAPABILITY IMAP4rev1"));
        assert_eq!(talk(80, b"").0, None);
        assert_eq!(talk(6379, b"").0, None);
    }

    #[test]
    fn databases_greet_like_mysql_and_postgresql() {
        let s = Session::new(tcp_kind(3306));
        let g = s.greeting().unwrap();
        assert_eq!(
            g.len(),
            4 + u32::from_le_bytes([g[0], g[1], g[2], 0]) as usize
        );
        assert_eq!(&g[3..5], &[0, 0x0a]);
        assert!(g[5..].starts_with(b"8.0.36\0"));
        assert!(g.ends_with(b"caching_sha2_password\0"));
        let mut s = Session::new(tcp_kind(3306));
        let o = s.input(b"\x05\x00\x00\x01hello");
        assert!(o.reply.ends_with(b"#08S01Bad handshake") && o.close);
        assert_eq!(Session::new(tcp_kind(5432)).greeting(), None);
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0prtip\0\0");
        let n = startup.len() as u32;
        startup[..4].copy_from_slice(&n.to_be_bytes());
        let mut s = Session::new(tcp_kind(5432));
        let o = s.input(&startup);
        assert_eq!(o.reply, b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0");
        assert!(!o.close);
        let mut s = Session::new(tcp_kind(5432));
        assert_eq!(s.input(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]).reply, b"N");
        let (_, r, c) = talk(5432, b"GET / HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("E\0\0\0") && r.contains("SFATAL") && c);
    }

    #[test]
    fn line_protocols_answer_commands() {
        let (_, r, c) = talk(25, b"EHLO scanner\r\n");
        assert!(r.starts_with("250-mx.prtip.test\r\n") && r.ends_with("250 CHUNKING\r\n") && !c);
        let (_, r, c) = talk(21, b"USER anonymous\r\nQUIT\r\n");
        assert_eq!(r, "331 Please specify the password.\r\n221 Goodbye.\r\n");
        assert!(c);
        let (_, r, c) = talk(143, b"a1 CAPABILITY\r\n");
        assert!(r.ends_with(
            "a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
        ));
        assert!(!c);
        let (_, r, c) = talk(22, b"SSH-2.0-prtip\r\n");
        assert_eq!((r.as_str(), c), ("", true));
        let mut s = Session::new(Kind::Smtp);
        assert_eq!(s.input(b"HEL").reply, b"");
        assert_eq!(s.input(b"O x\r\n").reply, b"250 mx.prtip.test\r\n");
    }

    #[test]
    fn http_waits_for_the_request_and_names_its_server() {
        let mut s = Session::new(tcp_kind(80));
        assert_eq!(s.input(b"GET / HTTP/1.0\r\n"), Output::default());
        let o = s.input(b"\r\n");
        let r = String::from_utf8(o.reply).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"),
            "{r}"
        );
        assert!(r.contains("Welcome to nginx!") && o.close);
        let (_, r, _) = talk(8080, b"HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\nServer: Apache/2.4.62 (Debian)\r\n"));
        assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r}");
        let (_, r, c) = talk(80, b"\x16\x03\x01\x00\x05hello");
        assert!(r.starts_with("HTTP/1.1 400 Bad Request") && c);
    }

    #[test]
    fn http_date_is_imf_fixdate() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn redis_answers_ping_and_info_in_both_syntaxes() {
        let (_, r, c) = talk(6379, b"PING\r\n");
        assert_eq!((r.as_str(), c), ("+PONG\r\n", false));
        let mut s = Session::new(Kind::Redis);
        assert_eq!(s.input(b"*1\r\n$4\r\nin").reply, b"");
        let r = String::from_utf8(s.input(b"fo\r\n").reply).unwrap();
        assert!(
            r.starts_with('$') && r.contains("redis_version:7.0.15\r\n"),
            "{r}"
        );
        let (_, r, _) = talk(6379, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(
            r,
            "-ERR unknown command 'GET', with args beginning with: 'k' \r\n"
        );
        let (_, r, c) = talk(6379, b"QUIT\r\n");
        assert_eq!((r.as_str(), c), ("+OK\r\n", true));
    }

    fn client_hello(suites: &[u16], versions: Option<&[u16]>) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(32);
        body.extend_from_slice(&[9u8; 32]);
        body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            body.extend_from_slice(&s.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        let mut ext = Vec::new();
        if let Some(v) = versions {
            ext.extend_from_slice(&43u16.to_be_bytes());
            ext.extend_from_slice(&((v.len() * 2 + 1) as u16).to_be_bytes());
            ext.push((v.len() * 2) as u8);
            for x in v {
                ext.extend_from_slice(&x.to_be_bytes());
            }
        }
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let hs = handshake_msg(1, &body);
        let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn tls_serves_the_certificate() {
        let mut s = Session::new(tcp_kind(443));
        assert_eq!(s.greeting(), None);
        let hello = client_hello(&[0x1301, 0x009c], Some(&[0x0304, 0x0303]));
        assert_eq!(s.input(&hello[..10]), Output::default());
        let o = s.input(&hello[10..]);
        assert!(!o.close);
        let r = o.reply;
        assert_eq!(&r[..3], &[0x16, 0x03, 0x03]);
        assert_eq!(r[5], 2, "ServerHello first");
        // suite 0x009c chosen
        let sid_len = r[5 + 4 + 2 + 32] as usize;
        let at = 5 + 4 + 2 + 32 + 1 + sid_len;
        assert_eq!(&r[at..at + 2], &[0x00, 0x9c]);
        let pos = r
            .windows(TLS_CERT_DER.len())
            .position(|w| w == TLS_CERT_DER)
            .expect("certificate in the reply");
        assert!(pos > at);
        assert_eq!(&r[r.len() - 4..], &[14, 0, 0, 0], "ServerHelloDone last");
        // ECDHE-only client: hello + certificate, then an alert.
        let (_, _, c) = talk(443, &client_hello(&[0xc02f], None));
        assert!(c);
        // TLS 1.3 only: protocol_version alert.
        let mut s = Session::new(Kind::Tls);
        let o = s.input(&client_hello(&[0x1301], Some(&[0x0304])));
        assert_eq!(o.reply, tls_alert(70));
        // Plain text to 443.
        let mut s = Session::new(Kind::Tls);
        assert_eq!(s.input(b"GET / HTTP/1.0\r\n\r\n").reply, tls_alert(10));
    }

    #[test]
    fn unknown_ports_are_silent_and_buffers_are_bounded() {
        assert_eq!(tcp_kind(9999), Kind::Silent);
        let mut s = Session::new(Kind::Smtp);
        let o = s.input(&vec![b'a'; MAX_INPUT + 1]);
        assert!(o.close);
    }

    #[test]
    fn every_table_row_has_a_unique_port() {
        let mut ports: Vec<u16> = TCP_SERVICES.iter().map(|s| s.port).collect();
        ports.dedup();
        assert_eq!(ports.len(), TCP_SERVICES.len());
    }
}
