//! Unit tests: every field and operator, precedence, and error columns.

use super::*;
use prtip_store::event::{Addr, PortState, Protocol, Reason};
use prtip_store::ServiceInfo;
use std::net::IpAddr;

fn row(addr: &str, port: u16, proto: Protocol, state: PortState) -> ResultRow {
    let ip: IpAddr = addr.parse().unwrap();
    ResultRow {
        addr: Addr::from(ip),
        hostname: None,
        port,
        proto,
        state,
        reason: match state {
            PortState::Open => Reason::SynAck,
            PortState::Closed => Reason::Reset,
            _ => Reason::NoResponse,
        },
        ttl: 64,
        rtt_us: 1_200,
        time_us: 1,
        service: None,
        banner: None,
    }
}

fn http(mut r: ResultRow) -> ResultRow {
    r.service = Some(ServiceInfo {
        name: "http".into(),
        product: "Apache httpd".into(),
        version: "2.4.57".into(),
        extra: "(Debian)".into(),
        confidence: 0.8,
        method: "probe".into(),
    });
    r.banner = Some(b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.57 (Debian)\r\n".to_vec());
    r
}

fn tcp_open(addr: &str, port: u16) -> ResultRow {
    row(addr, port, Protocol::Tcp, PortState::Open)
}

fn m(expr: &str, r: &ResultRow) -> bool {
    Filter::parse(expr)
        .unwrap_or_else(|e| panic!("{expr:?} should parse:\n{e}"))
        .matches(r)
}

fn err(expr: &str) -> ParseError {
    match Filter::parse(expr) {
        Ok(_) => panic!("{expr:?} should not parse"),
        Err(e) => e,
    }
}

#[test]
fn port_lists_ranges_and_comparisons() {
    let r22 = tcp_open("10.0.0.1", 22);
    let r8080 = tcp_open("10.0.0.1", 8080);
    assert!(m("port 22", &r22));
    assert!(!m("port 22", &r8080));
    assert!(m("port 22,80", &r22));
    assert!(m("port 1-1024", &r22));
    assert!(!m("port 1-1024", &r8080));
    assert!(m("port 22,8000-8100", &r8080));
    assert!(m("port -1024", &r22));
    assert!(m("port 8080-", &r8080));
    assert!(m("port = 22", &r22));
    assert!(m("port in 21-23", &r22));
    assert!(!m("port != 22", &r22));
    assert!(m("port != 22", &r8080));
    assert!(m("port < 1024", &r22));
    assert!(!m("port < 22", &r22));
    assert!(m("port <= 22", &r22));
    assert!(m("port > 1024", &r8080));
    assert!(!m("port > 8080", &r8080));
    assert!(m("port >= 8080", &r8080));
    assert!(m(
        "port 0-65535",
        &row("::1", 0, Protocol::Udp, PortState::Closed)
    ));
    assert!(m("port 65535", &tcp_open("::1", 65535)));
    assert!(!m("port > 65535", &tcp_open("::1", 65535)));
    assert!(!m("port < 0", &tcp_open("::1", 0)));
}

#[test]
fn proto_state_and_reason() {
    let t = tcp_open("10.0.0.1", 80);
    let u = row("10.0.0.1", 53, Protocol::Udp, PortState::OpenFiltered);
    assert!(m("proto tcp", &t));
    assert!(!m("proto tcp", &u));
    assert!(m("proto tcp|udp", &u));
    assert!(m("proto tcp,udp", &t));
    assert!(m("proto = UDP", &u));
    assert!(m("proto != tcp", &u));
    assert!(m("state open", &t));
    assert!(!m("state open", &u));
    // `open|filtered` is nmap's single state name, not "open or filtered".
    assert!(m("state open|filtered", &u));
    assert!(!m("state open|filtered", &t));
    assert!(m("state open,filtered", &t));
    assert!(!m("state open,filtered", &u));
    assert!(m("state closed|open|filtered", &u));
    assert!(m("state open|filtered|open", &t));
    assert!(m("state open_filtered", &u));
    // `-sA`'s state, through the compiled truth table and through and/or/not.
    let unf = row("10.0.0.1", 443, Protocol::Tcp, PortState::Unfiltered);
    assert!(m("state unfiltered", &unf));
    assert!(!m("state unfiltered", &t));
    assert!(!m("state filtered", &unf));
    assert!(m("proto tcp and state unfiltered|open", &unf));
    assert!(!m("not state unfiltered", &unf));
    assert!(m("not state unfiltered", &u));
    let filtered = row("10.0.0.1", 81, Protocol::Tcp, PortState::Filtered);
    assert!(m("state filtered", &filtered));
    assert!(m("state closed|filtered", &filtered));
    assert!(!m("state open|filtered", &filtered));
    assert!(m("state != open", &filtered));
    assert!(m("reason syn-ack", &t));
    assert!(m("reason no-response", &u));
    assert!(!m("reason reset|conn-refused", &t));
    let mut c = t.clone();
    c.reason = Reason::Connected;
    assert!(
        m("reason syn-ack", &c),
        "syn-ack also names a completed connect"
    );
    assert!(m("reason connected", &c));
    assert!(!m("reason connected", &t));
}

#[test]
fn addresses_and_cidrs_ipv4_and_ipv6() {
    let a = tcp_open("10.1.2.3", 80);
    let b = tcp_open("192.168.7.9", 80);
    let c = tcp_open("2001:db8::42", 80);
    assert!(m("addr 10.0.0.0/8", &a));
    assert!(!m("addr 10.0.0.0/8", &b));
    assert!(m("addr 10.1.2.3", &a));
    assert!(!m("addr 10.1.2.4", &a));
    assert!(m("addr 10.1.2.3/32", &a));
    assert!(m("addr 0.0.0.0/0", &b));
    assert!(!m("addr 0.0.0.0/0", &c), "IPv4 /0 covers IPv4 only");
    assert!(m("addr 192.168.0.0/16,10.0.0.0/8", &b));
    assert!(m("addr 2001:db8::/32", &c));
    assert!(!m("addr 2001:db9::/32", &c));
    assert!(m("addr 2001:db8::42", &c));
    assert!(m("addr ::/0", &c));
    assert!(
        m("addr ::/0", &a),
        "IPv6 /0 covers everything, mapped IPv4 included"
    );
    assert!(m("addr ::ffff:10.0.0.0/104", &a));
    assert!(m("addr != 10.0.0.0/8", &b));
    assert!(m("ip 10.1.0.0/16", &a));
    assert!(m("host in 10.1.2.0/24", &a));
    assert!(
        m("addr 10.1.2.7/24", &a),
        "host bits in the prefix are ignored"
    );
}

#[test]
fn service_product_version_extra_text() {
    let h = http(tcp_open("10.0.0.1", 80));
    let bare = tcp_open("10.0.0.1", 80);
    assert!(m(r#"service ~ "http|ssl""#, &h));
    assert!(m(r#"service =~ "^ht""#, &h));
    assert!(!m(r#"service ~ "^ssl""#, &h));
    assert!(m(r#"service !~ "ssl""#, &h));
    assert!(m("service http", &h));
    assert!(m("service = http", &h));
    assert!(m("service == 'http'", &h));
    assert!(!m("service htt", &h));
    assert!(m("service != ssh", &h));
    assert!(m(r#"version ~= "2.4""#, &h));
    assert!(m(r#"version contains "2.4""#, &h));
    assert!(!m(r#"version contains "2.5""#, &h));
    assert!(m(r#"version ~ "^2\.4\.\d+$""#, &h));
    assert!(m(r#"product ~= "Apache""#, &h));
    assert!(m(r#"product = "Apache httpd""#, &h));
    assert!(m(r#"extra contains "Debian""#, &h));
    assert!(m(r#"info ~ "(?i)debian""#, &h));
    // A row without a service has no value: comparisons are false, negations true.
    assert!(!m(r#"service ~ ".*""#, &bare));
    assert!(m(r#"not service ~ ".*""#, &bare));
    assert!(m("service != http", &bare));
    assert!(!m(r#"version ~= """#, &bare));
    assert!(m(r#"version ~= """#, &h));
}

#[test]
fn banner_regex_and_substring_on_bytes() {
    let mut h = http(tcp_open("10.0.0.1", 80));
    assert!(m(r#"banner ~ "Apache/2\.4""#, &h));
    assert!(m(r#"banner ~ "^HTTP/1\.[01] 200""#, &h));
    assert!(m(r#"banner contains "Server:""#, &h));
    assert!(
        m(r#"banner ~= "(Debian)""#, &h),
        "substring is literal, not a regex"
    );
    assert!(!m(r#"banner ~= "nginx""#, &h));
    assert!(m(r#"banner !~ "nginx""#, &h));
    // Non-UTF-8 banners are matched on raw bytes.
    h.banner = Some(vec![0xff, 0xfe, b'S', b'S', b'H', 0x1b, b'[', b'2', b'J']);
    assert!(m(r#"banner ~ "SSH""#, &h));
    assert!(m(r#"banner ~ "\x1b\[2J""#, &h));
    assert!(m(r#"banner ~ "^\xff\xfe""#, &h));
    assert!(m("has banner", &h));
    assert!(!m("has banner", &tcp_open("10.0.0.1", 80)));
    assert!(!m(r#"banner ~ """#, &tcp_open("10.0.0.1", 80)));
}

#[test]
fn confidence_compares_at_stored_precision() {
    let h = http(tcp_open("10.0.0.1", 80)); // confidence 0.8 as f32
    assert!(m("confidence >= 0.8", &h));
    assert!(!m("confidence > 0.8", &h));
    assert!(m("confidence = 0.8", &h));
    assert!(m("confidence <= 0.8", &h));
    assert!(!m("confidence < 0.8", &h));
    assert!(m("confidence != 0.9", &h));
    assert!(m("confidence >= 80%", &h));
    assert!(m("conf > 0.5", &h));
    assert!(!m("confidence >= 0", &tcp_open("10.0.0.1", 80)));
}

#[test]
fn rtt_with_units_and_unknown_rtt() {
    let r = tcp_open("10.0.0.1", 80); // 1200 us
    assert!(m("rtt < 5ms", &r));
    assert!(!m("rtt < 1ms", &r));
    assert!(m("rtt > 1ms", &r));
    assert!(m("rtt = 1200us", &r));
    assert!(m("rtt = 1.2ms", &r));
    assert!(m("rtt <= 1200µs", &r));
    assert!(m("rtt < 0.5s", &r));
    assert!(!m("rtt >= 1s", &r));
    let mut unknown = r.clone();
    unknown.rtt_us = 0;
    assert!(
        !m("rtt < 5ms", &unknown),
        "unknown RTT never satisfies a comparison"
    );
    assert!(!m("has rtt", &unknown));
    assert!(m("has rtt", &r));
}

#[test]
fn ttl_hostname_and_has() {
    let mut r = http(tcp_open("10.0.0.1", 80));
    r.hostname = Some("www.example.test".into());
    assert!(m("ttl = 64", &r));
    assert!(m("ttl <= 64", &r));
    assert!(!m("ttl < 64", &r));
    assert!(m(r#"hostname ~ "\.test$""#, &r));
    assert!(m(r#"hostname contains "example""#, &r));
    assert!(m(
        "has hostname and has service and has version and has product",
        &r
    ));
    assert!(!m("has hostname", &tcp_open("10.0.0.1", 80)));
    assert!(!m("has service", &tcp_open("10.0.0.1", 80)));
}

#[test]
fn the_issue_example() {
    let f = Filter::parse(
        r#"port 1-1024 and proto tcp and state open and service ~ "http|ssl" and confidence >= 0.8"#,
    )
    .unwrap();
    assert!(f.matches(&http(tcp_open("10.0.0.1", 80))));
    assert!(!f.matches(&http(tcp_open("10.0.0.1", 8080))));
    assert!(!f.matches(&tcp_open("10.0.0.1", 80)), "no service");
    let mut low = http(tcp_open("10.0.0.1", 443));
    low.service.as_mut().unwrap().confidence = 0.5;
    assert!(!f.matches(&low));
    let mut ssl = http(tcp_open("10.0.0.1", 443));
    ssl.service.as_mut().unwrap().name = "ssl/http".into();
    assert!(f.matches(&ssl));
    let mut closed = http(tcp_open("10.0.0.1", 80));
    closed.state = PortState::Closed;
    assert!(!f.matches(&closed));
}

#[test]
fn precedence_not_binds_tighter_than_and_tighter_than_or() {
    let r80 = tcp_open("10.0.0.1", 80);
    let r22u = row("10.0.0.1", 22, Protocol::Udp, PortState::Closed);
    // `a or b and c` is `a or (b and c)`.
    assert!(m("port 80 or port 22 and proto tcp", &r80));
    assert!(!m("port 80 or port 22 and proto tcp", &r22u));
    assert!(!m("(port 80 or port 22) and proto tcp", &r22u));
    assert!(m("(port 80 or port 22) and proto udp", &r22u));
    // `not a and b` is `(not a) and b`.
    assert!(m("not port 80 and proto udp", &r22u));
    assert!(!m("not (port 22 and proto udp)", &r22u));
    assert!(m("not port 22 or proto udp", &r22u));
    assert!(!m("not port 22 or proto tcp", &r22u));
    assert!(m("not not port 22", &r22u));
    assert!(m("!port 80", &r22u));
    assert!(m("port 1 || port 22 && !proto tcp", &r22u));
    assert!(m("PORT 22 AND PROTO UDP Or port 1", &r22u));
    assert!(m("((port 22))", &r22u));
    assert!(m(
        "port 22 and (state closed or state open) and (proto udp)",
        &r22u
    ));
    assert!(m("all", &r80));
    assert!(Filter::parse("true").unwrap().is_all());
    assert!(m("all and port 80", &r80));
    assert!(!m("all and port 81", &r80));
    assert!(m("port 81 or all", &r80));
    assert!(m("port 80 and(proto tcp)", &r80));
    assert!(m("confidence>=0.5 or port==80", &r80));
}

#[test]
fn source_display_and_fromstr() {
    let f: Filter = "  port 80  ".parse().unwrap();
    assert_eq!(f.source(), "port 80");
    assert_eq!(f.to_string(), "port 80");
    assert!(!f.is_all());
    assert!(Filter::all().is_all());
    assert_eq!(Filter::all().source(), "all");
}

/// (expression, column, width, message)
#[track_caller]
fn check_err(expr: &str, col: usize, width: usize, msg: &str) {
    let e = err(expr);
    assert_eq!(e.message(), msg, "message for {expr:?}");
    assert_eq!(
        (e.column(), e.width()),
        (col, width),
        "position for {expr:?}: {e}"
    );
    assert_eq!(e.input(), expr);
}

#[test]
fn error_columns_point_at_the_bad_token() {
    check_err(
        "",
        1,
        1,
        "empty filter: write a condition such as `port 80` or `state open`",
    );
    check_err(
        "port http",
        6,
        4,
        "expected a port number (0-65535), found `http`",
    );
    check_err("port 22,99999", 9, 5, "port 99999 is above 65535");
    check_err(
        "port 22,,80",
        9,
        1,
        "empty item in port list (two commas in a row, or a trailing comma)",
    );
    check_err(
        "port 1024-1",
        6,
        6,
        "port range `1024-1` runs backwards; write `1-1024`",
    );
    check_err(
        "port 1-x",
        8,
        1,
        "expected a port number (0-65535), found `x`",
    );
    check_err(
        "port",
        5,
        1,
        "expected a value after `port`, found the end of the filter",
    );
    check_err(
        "port 80 and",
        12,
        1,
        "expected a condition (such as `port 80`), found the end of the filter",
    );
    check_err(
        "port 80 proto tcp",
        9,
        5,
        "expected `and`, `or` or the end of the filter, found `proto`",
    );
    check_err("port 80)", 8, 1, "unmatched `)`: no `(` is open here");
    check_err(
        "(port 80 or port 81",
        20,
        1,
        "expected `)` to close the `(` at column 1, found the end of the filter",
    );
    check_err(
        "proto tcp|icmp",
        11,
        4,
        "unknown proto `icmp`; values are tcp, udp",
    );
    check_err(
        "state open|shut",
        12,
        4,
        "unknown state `shut`; values are open, closed, filtered, open|filtered, unfiltered",
    );
    check_err(
        "addr 10.0.0.0/33",
        15,
        2,
        "prefix length `/33` must be 0-32 for 10.0.0.0",
    );
    check_err(
        "addr 10.0.0.0/8,10.0.0.300",
        17,
        10,
        "expected an IPv4 or IPv6 address or CIDR (10.0.0.0/8, 2001:db8::/32), found `10.0.0.300`",
    );
    check_err(
        "addr 2001:db8::/129",
        17,
        3,
        "prefix length `/129` must be 0-128 for 2001:db8::",
    );
    check_err(
        r#"service ~ "http(""#,
        11,
        7,
        "invalid regular expression: unclosed group",
    );
    check_err(
        r#"service ~ "http"#,
        11,
        5,
        "unterminated string: add the closing \"",
    );
    check_err(
        "confidence >= 1.5",
        15,
        3,
        "confidence `1.5` is outside 0..1 (write 0.8 or 80%)",
    );
    check_err(
        "confidence >= high",
        15,
        4,
        "expected a confidence between 0 and 1 (or 0% to 100%), found `high`",
    );
    check_err(
        "confidence 0.8",
        1,
        10,
        "`confidence` needs an operator; use a comparison such as `confidence >= 0.8`",
    );
    check_err(
        "rtt < 5",
        7,
        1,
        "`5` needs a unit: write `5ms`, `5us` or `5s`",
    );
    check_err(
        "rtt < 5min",
        8,
        3,
        "unknown time unit `min`; use us, ms or s",
    );
    check_err(
        "port ~ 80",
        6,
        1,
        "operator `~` does not apply to `port`; use a list `port 22,80,1000-2000` or `<`, `<=`, `>`, `>=`, `!=`",
    );
    check_err(
        "port => 80",
        6,
        2,
        "unknown operator `=>`; operators are = != < <= > >= ~ !~ ~= contains in",
    );
    check_err(
        "state open and prot tcp",
        16,
        4,
        "unknown field `prot` (did you mean `proto`?); fields are port, proto, state, addr, service, product, version, extra, banner, confidence, rtt, ttl, reason, hostname, has",
    );
    check_err(
        "and port 80",
        1,
        3,
        "expected a condition (such as `port 80`) before `and`",
    );
    check_err(
        "port 80 and or port 81",
        13,
        2,
        "expected a condition (such as `port 80`) before `or`",
    );
    check_err(
        "port 80 and )",
        13,
        1,
        "expected a condition (such as `port 80`), found `)`",
    );
    check_err(
        "ttl > 300",
        7,
        3,
        "expected a TTL from 0 to 255, found `300`",
    );
    check_err(
        "has color",
        5,
        5,
        "`has` takes banner, service, product, version, hostname or rtt, found `color`",
    );
    check_err(
        "reason synack,nope",
        15,
        4,
        "unknown reason `nope`; values are syn-ack, reset, host-unreach, port-unreach, udp-response, no-response, connected, conn-refused",
    );
}

#[test]
fn error_columns_count_characters_not_bytes() {
    // `µ` is two bytes; the caret must still sit under `x`.
    let e = err(r#"banner ~= "µµ" and x 1"#);
    assert_eq!(e.column(), 20);
    assert_eq!(e.caret_line(), format!("{}^", " ".repeat(19)));
}

#[test]
fn display_has_message_input_and_caret() {
    let e = err("port 80 and state opne");
    assert_eq!(
        e.to_string(),
        "unknown state `opne`; values are open, closed, filtered, open|filtered, unfiltered (column 19)\n  port 80 and state opne\n                    ^^^^"
    );
    let shifted = e.shifted(4, "xxx port 80 and state opne");
    assert_eq!(shifted.column(), 23);
}

#[test]
fn optimizer_keeps_answers() {
    // Reordering and flattening must not change results: compare a few
    // expressions against hand-evaluated truth on a small grid of rows.
    let rows = [
        http(tcp_open("10.0.0.1", 80)),
        tcp_open("10.0.0.2", 22),
        row("10.0.0.3", 53, Protocol::Udp, PortState::OpenFiltered),
        row("2001:db8::1", 443, Protocol::Tcp, PortState::Closed),
    ];
    let cases: &[(&str, [bool; 4])] = &[
        (r#"service ~ "http" or port 22"#, [true, true, false, false]),
        (
            r#"(port 22 or (port 53 or port 443)) and not addr 2001:db8::/32"#,
            [false, true, true, false],
        ),
        (
            r#"not (state open and (proto tcp and banner ~ "Apache"))"#,
            [false, true, true, true],
        ),
        ("all or port 1", [true, true, true, true]),
        ("not all or port 22", [false, true, false, false]),
        ("not not not port 80", [false, true, true, true]),
    ];
    for (expr, want) in cases {
        let f = Filter::parse(expr).unwrap();
        let got: Vec<bool> = rows.iter().map(|r| f.matches(r)).collect();
        assert_eq!(got, want.to_vec(), "{expr}");
    }
}

#[test]
fn compiled_form_agrees_with_plain_evaluation_on_every_state_combination() {
    // Every (proto, state, reason) combination on a few ports and addresses,
    // with and without a service: the optimised tree (truth tables, merged port
    // bitmaps, reordering) must give the same answer as the tree as parsed.
    let protos = [Protocol::Tcp, Protocol::Udp];
    let states = [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::OpenFiltered,
    ];
    let reasons = [
        Reason::SynAck,
        Reason::Reset,
        Reason::IcmpUnreachable,
        Reason::PortUnreachable,
        Reason::UdpResponse,
        Reason::NoResponse,
        Reason::Connected,
        Reason::ConnRefused,
    ];
    let mut rows = Vec::new();
    for &proto in &protos {
        for &state in &states {
            for &reason in &reasons {
                for (addr, port) in [("10.0.0.1", 22), ("10.9.0.1", 80), ("2001:db8::7", 8080)] {
                    let mut r = row(addr, port, proto, state);
                    r.reason = reason;
                    rows.push(r.clone());
                    rows.push(http(r));
                }
            }
        }
    }
    let exprs = [
        "proto tcp and state open",
        "state open|filtered or reason reset",
        "not (proto udp or state closed) and port 22,80",
        "(port 22 or port 80) and not (port 80 and proto udp)",
        "state open and reason syn-ack or state closed and reason conn-refused",
        "not state open and not state closed and (proto tcp or reason no-response)",
        r#"port < 1024 and (service ~ "http" or reason reset) and addr 10.0.0.0/8"#,
        "proto tcp or proto udp",
        "port 22 or not port 22",
        "not (port 1-100 and port 50-200) or state filtered",
        "(state open or all) and port 8080",
        "reason syn-ack and not reason connected",
    ];
    for expr in exprs {
        let plain = parse::Parser::new(expr).parse().unwrap();
        let fast = Filter::parse(expr).unwrap();
        for r in &rows {
            assert_eq!(plain.eval(r), fast.matches(r), "{expr} on {r:?}");
        }
    }
    // Pure protocol/state/reason expressions collapse to one table lookup.
    assert!(matches!(
        Filter::parse("not (proto udp or state closed) and reason syn-ack|reset")
            .unwrap()
            .root,
        node::Node::Table(_)
    ));
    assert!(Filter::parse("proto tcp or proto udp").unwrap().is_all());
    assert!(Filter::parse("port 22 or not port 22").unwrap().is_all());
    assert!(Filter::parse("port 0-65535").unwrap().is_all());
}

/// 400 nested parentheses or 20 000 `not` used to overflow the stack and abort
/// the process (exit 134) in scan, export and monitor: the depth is bounded
/// with an error that says so, and a filter at the bound still works.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let parens = format!("{}port 80{}", "(".repeat(400), ")".repeat(400));
    let e = Filter::parse(&parens).unwrap_err();
    assert!(e.message().contains("more than 64 levels"), "{e}");
    assert_eq!(e.column(), MAX_DEPTH + 1);
    let nots = format!("{}port 80", "not ".repeat(20_000));
    let e = Filter::parse(&nots).unwrap_err();
    assert!(e.message().contains("more than 64 levels"), "{e}");
    let bangs = format!("{}port 80", "!".repeat(20_000));
    assert!(Filter::parse(&bangs).is_err());
    // Exactly at the bound: parses, evaluates, drops.
    let ok = format!("{}port 80{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(Filter::parse(&ok).is_ok());
    let ok = format!("{}port 80", "not ".repeat(MAX_DEPTH));
    let f = Filter::parse(&ok).unwrap();
    assert!(f.matches(&row("10.0.0.1", 80, Protocol::Tcp, PortState::Open)));
    // Sequences at one level are not nesting.
    let wide = vec!["(port 80)"; 5000].join(" or ");
    assert!(Filter::parse(&wide).is_ok());
}
