//! prtip-services: what runs on an open port, from the bytes it sends.
//!
//! This crate owns the probe database (prtip's own format in
//! `services/data/probes.prtip`, plus nmap's `nmap-service-probes` when a user has
//! one), matching responses against it with version extraction, the per-port
//! detection order ([`detect::Detector`]), TLS ClientHello / certificate reading
//! ([`tls`]) and the UDP payloads `-sU` sends ([`ProbeDb::udp_probe`]). It is pure:
//! no sockets, no threads, no clocks. The io_uring connection driver that feeds it
//! lives in prtip-engine (`engine/src/connect.rs`, `engine/src/udp.rs`).
//!
//! Confidence scale (0..1), reported in Service events:
//! - 1.0 — a hard match that extracted a version ([`db::CONF_HARD_VERSION`]);
//! - 0.9 — a hard match without a version ([`db::CONF_HARD`]);
//! - 0.8 — a TLS handshake: TLS certain, the application named from the port table ([`db::CONF_TLS`]);
//! - 0.5 — a soft match: the protocol is known, the product is not ([`db::CONF_SOFT`]);
//! - 0.3 — nothing matched; the name comes from the port table ([`db::CONF_PORT_TABLE`]).
//!
//! A rule may set its own confidence (`confidence=0.7` in probes.prtip).
//!
//! ```
//! use prtip_services::{ProbeDb, Protocol};
//! let db = ProbeDb::builtin();
//! let null = db.probe("NULL", Protocol::Tcp).unwrap();
//! let d = db.match_response(null, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").unwrap();
//! assert_eq!((d.service.as_str(), d.product.as_str(), d.version.as_str()), ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3"));
//! ```

#![warn(missing_docs)]

pub mod db;
pub mod detect;
pub mod escape;
pub mod nmap;
/// prtip's one port table (the `-p` names, the `--top-ports` ranking, the
/// SERVICE names of exports): the store's, which reads `-p` back into a scan's
/// probe space.
pub use prtip_store::port_table;
pub mod prtip_format;
pub mod tls;

pub use db::{
    DbError, Detection, Groups, Match, Pattern, PortService, PortSet, Probe, ProbeDb, ProbeKind,
    Protocol,
};
pub use detect::{DetectOptions, Detector, NextProbe, Outcome};

#[cfg(test)]
mod builtin_tests {
    use super::*;

    fn null_match(db: &ProbeDb, bytes: &[u8]) -> Detection {
        let null = db.probe("NULL", Protocol::Tcp).unwrap();
        db.match_response(null, bytes)
            .unwrap_or_else(|| panic!("no match for {}", escape::printable(bytes)))
    }

    #[test]
    fn builtin_parses_and_has_no_skipped_rules() {
        let db = ProbeDb::builtin();
        assert!(db.skipped.is_empty());
        assert!(db.probes.len() >= 18);
        assert_eq!(db.probes[0].name, "NULL");
        assert!(db.port_service(443, Protocol::Tcp).unwrap().tls);
        assert_eq!(db.port_service(53, Protocol::Udp).unwrap().name, "domain");
    }

    #[test]
    fn greetings_identify_products() {
        let db = ProbeDb::builtin();
        let cases: &[(&[u8], &str, &str, &str)] = &[
            (b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3"),
            (b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n", "ssh", "OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10"),
            (b"SSH-2.0-OpenSSH_9.3 FreeBSD-20230316\r\n", "ssh", "OpenSSH", "9.3"),
            (b"SSH-2.0-OpenSSH_9.6\r\n", "ssh", "OpenSSH", "9.6"),
            (b"SSH-2.0-dropbear_2022.83\r\n", "ssh", "Dropbear sshd", "2022.83"),
            (b"220 (vsFTPd 3.0.3)\r\n", "ftp", "vsftpd", "3.0.3"),
            (b"220 ProFTPD 1.3.8 Server (Debian) [::ffff:1.2.3.4]\r\n", "ftp", "ProFTPD", "1.3.8"),
            (b"220 mail.lab.test ESMTP Postfix (Debian/GNU)\r\n", "smtp", "Postfix smtpd", ""),
            (b"220 mx.example ESMTP Exim 4.96 Mon, 01 Jan 2024\r\n", "smtp", "Exim smtpd", "4.96"),
            (b"+OK Dovecot (Debian) ready.\r\n", "pop3", "Dovecot pop3d", ""),
            (b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n", "imap", "Dovecot imapd", ""),
            (b"J\x00\x00\x00\x0a8.0.36-0ubuntu0.22.04.1\x00\x08\x00\x00\x00", "mysql", "MySQL", "8.0.36"),
            (b"Z\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00\x1f\x00\x00\x00", "mysql", "MariaDB", "10.11.6"),
            (b"RFB 003.008\n", "vnc", "VNC", ""),
        ];
        for (bytes, svc, product, version) in cases {
            let d = null_match(&db, bytes);
            assert_eq!(
                (d.service.as_str(), d.product.as_str(), d.version.as_str()),
                (*svc, *product, *version),
                "{}",
                escape::printable(bytes)
            );
            assert!(!d.soft);
            assert_eq!(d.method, "banner");
        }
        let d = null_match(&db, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        assert_eq!((d.info.as_str(), d.os.as_str()), ("protocol 2.0", "Linux"));
        assert_eq!(d.confidence, 1.0);
        let d = null_match(&db, b"220 mail.lab.test ESMTP Postfix (Debian/GNU)\r\n");
        assert_eq!(
            (d.hostname.as_str(), d.info.as_str()),
            ("mail.lab.test", "Debian/GNU")
        );
        assert_eq!(d.confidence, 0.9);
        let d = null_match(&db, b"J\x00\x00\x00\x0a8.0.36-0ubuntu0.22.04.1\x00");
        assert_eq!(d.info, "-0ubuntu0.22.04.1");
        // a generic FTP greeting is only a soft match
        let d = null_match(&db, b"220 Welcome to the lab FTP service\r\n");
        assert!(d.soft && d.service == "ftp" && d.confidence == 0.5);
    }

    #[test]
    fn probes_identify_http_redis_postgres() {
        let db = ProbeDb::builtin();
        let get = db.probe("GetRequest", Protocol::Tcp).unwrap();
        let d = db
            .match_response(
                get,
                b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap();
        assert_eq!(
            (d.service.as_str(), d.product.as_str(), d.version.as_str()),
            ("http", "nginx", "1.22.1")
        );
        assert_eq!(d.cpe, vec!["cpe:/a:igor_sysoev:nginx:1.22.1"]);
        let d = db
            .match_response(
                get,
                b"HTTP/1.0 404 Not Found\r\nserver: Apache/2.4.62 (Debian)\r\n\r\n",
            )
            .unwrap();
        assert_eq!(
            (d.product.as_str(), d.version.as_str(), d.info.as_str()),
            ("Apache httpd", "2.4.62", "Debian")
        );
        let d = db
            .match_response(get, b"HTTP/1.1 200 OK\r\nServer: Frob/3.1\r\n\r\n")
            .unwrap();
        assert_eq!(
            (d.product.as_str(), d.version.as_str(), d.confidence),
            ("Frob", "3.1", 0.9)
        );
        let redis = db.probe("RedisInfo", Protocol::Tcp).unwrap();
        let info = b"$120\r\n# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\nos:Linux\r\n";
        let d = db.match_response(redis, info).unwrap();
        assert_eq!(
            (d.service.as_str(), d.version.as_str(), d.info.as_str()),
            ("redis", "7.0.15", "mode standalone")
        );
        let pg = db.probe("PostgresStartup", Protocol::Tcp).unwrap();
        assert_eq!(pg.payload.len(), 0x3a);
        let d = db
            .match_response(
                pg,
                b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00",
            )
            .unwrap();
        assert_eq!(
            (d.service.as_str(), d.info.as_str()),
            ("postgresql", "authentication request 10")
        );
        let d = db
            .match_response(pg, b"E\x00\x00\x00\x5cSFATAL\x00VFATAL\x00C28000\x00Mno pg_hba.conf entry for host \"1.2.3.4\"\x00Fauth.c\x00\x00")
            .unwrap();
        assert_eq!(d.info, "no pg_hba.conf entry for host \"1.2.3.4\"");
    }

    #[test]
    fn udp_payloads_and_answers() {
        let db = ProbeDb::builtin();
        for port in [53, 123, 161, 137, 1900, 5353, 5060, 111, 69, 11211, 1434] {
            assert!(db.udp_probe(port).is_some(), "no UDP payload for {port}");
        }
        assert!(db.udp_probe(9).is_none());
        let dns = db.udp_probe(53).unwrap();
        // an answer to version.bind with a TXT record "9.18.28-1~deb12u2-Debian"
        let mut ans = dns.payload.clone();
        ans[2] = 0x85;
        ans[3] = 0x80;
        ans[7] = 1;
        ans.extend_from_slice(
            b"\xc0\x0c\x00\x10\x00\x03\x00\x00\x00\x00\x00\x19\x189.18.28-1~deb12u2-Debian",
        );
        let d = db.match_response(dns, &ans).unwrap();
        assert_eq!(
            (d.service.as_str(), d.product.as_str(), d.version.as_str()),
            ("domain", "ISC BIND", "9.18.28-1~deb12u2-Debian")
        );
        let mut refused = dns.payload.clone();
        refused[2] = 0x81;
        refused[3] = 0x05;
        let d = db.match_response(dns, &refused).unwrap();
        assert_eq!((d.service.as_str(), d.product.as_str()), ("domain", ""));
        let ntp = db.udp_probe(123).unwrap();
        assert_eq!(ntp.payload.len(), 48);
        let mut reply = vec![0x24, 2, 6, 0xe9];
        reply.resize(48, 0);
        let d = db.match_response(ntp, &reply).unwrap();
        assert_eq!(
            (d.service.as_str(), d.version.as_str(), d.info.as_str()),
            ("ntp", "v4", "stratum 2")
        );
        let snmp = db.udp_probe(161).unwrap();
        assert_eq!(snmp.payload.len(), 0x2b);
    }

    #[test]
    fn detector_plans_and_decides() {
        let db = ProbeDb::builtin();
        // 6379: passive read, then the Redis probe before the generic ones
        let mut det = Detector::new(&db, 6379, DetectOptions::default());
        let plan = det.plan();
        assert_eq!(&plan[..2], &["NULL", "RedisInfo"]);
        let p = det.next_probe().unwrap();
        assert_eq!(p.probe.name, "NULL");
        assert!(!det.feed(p.probe, b"", true));
        let p = det.next_probe().unwrap();
        assert_eq!(p.probe.name, "RedisInfo");
        assert!(!det.feed(p.probe, b"$50\r\n# Server\r\nredis_ver", false));
        assert!(det.feed(
            p.probe,
            b"$50\r\n# Server\r\nredis_version:7.0.15\r\n",
            false
        ));
        assert!(det.next_probe().is_none());
        let out = det.finish();
        let d = out.detection.unwrap();
        assert_eq!(
            (d.service.as_str(), d.version.as_str(), d.method),
            ("redis", "7.0.15", "probe")
        );
        assert_eq!(out.banners.len(), 1);
        assert_eq!(out.banners[0].0, "RedisInfo");

        // a passive read that matches at once is the banner
        let mut det = Detector::new(&db, 22, DetectOptions::default());
        let p = det.next_probe().unwrap();
        assert!(det.feed(p.probe, b"SSH-2.0-OpenSSH_9.6\r\n", false));
        let out = det.finish();
        assert_eq!(
            out.banners,
            vec![("NULL".to_string(), b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())]
        );

        // 443: TLS first; the handshake is summarised, not logged as a banner
        let mut det = Detector::new(&db, 443, DetectOptions::default());
        assert_eq!(det.plan()[0], "TLSHello");
        let p = det.next_probe().unwrap();
        let alert = [0x15, 3, 3, 0, 2, 2, 40];
        assert!(det.feed(p.probe, &alert, false));
        let out = det.finish();
        assert!(out.banners.is_empty());
        let d = out.detection.unwrap();
        assert_eq!(
            (d.service.as_str(), d.info.as_str()),
            ("https", "TLS; alert 40")
        );

        // an FTP soft match narrows the plan to probes that can hard-match ftp: none
        let mut det = Detector::new(&db, 2121, DetectOptions::default());
        let p = det.next_probe().unwrap();
        assert!(!det.feed(p.probe, b"220 lab FTP ready\r\n", true));
        assert!(det.next_probe().is_none());
        let out = det.finish();
        let d = out.detection.unwrap();
        assert!(d.soft);
        assert_eq!(
            out.banners,
            vec![("NULL".to_string(), b"220 lab FTP ready\r\n".to_vec())]
        );

        // nothing answers: the port table names it
        let mut det = Detector::new(
            &db,
            3389,
            DetectOptions {
                intensity: 0,
                ..Default::default()
            },
        );
        while let Some(p) = det.next_probe() {
            det.feed(p.probe, b"", true);
        }
        let d = det.finish().detection.unwrap();
        assert_eq!(
            (d.service.as_str(), d.method, d.confidence),
            ("ms-wbt-server", "port-table", 0.3)
        );
    }
}
