//! Property-based fuzzing of the request path on stable: HTTP-shaped and
//! arbitrary bytes sent to in-memory forward and reverse proxy connections
//! must never panic, hang, or get anything but a well-formed HTTP answer
//! (or a closed connection). The same entry point backs the cargo-fuzz
//! target in `fuzz/`.

use ambassador::fuzzing::{Kind, check_answer, exchange};
use proptest::prelude::*;

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("CONNECT".to_owned()),
        Just("HEAD".to_owned()),
        Just("OPTIONS".to_owned()),
        "[A-Z]{1,12}",
        "[\\x00-\\xff]{0,8}",
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("*".to_owned()),
        Just("http://nowhere.invalid/x".to_owned()),
        Just("http://nowhere.invalid:80/x?y=1".to_owned()),
        Just("nowhere.invalid:443".to_owned()),
        Just("http://169.254.169.254/latest/meta-data".to_owned()),
        Just("http://[::1]:3128/".to_owned()),
        Just("http://127.0.0.1:3128/".to_owned()),
        Just("https://nowhere.invalid/".to_owned()),
        Just("http://[fd00:ec2::254]/".to_owned()),
        Just("http://user:pw@nowhere.invalid/".to_owned()),
        Just("ftp://nowhere.invalid/".to_owned()),
        "/[a-z0-9/%?=&.-]{0,40}",
        "[!-~]{0,60}",
    ]
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Connection: upgrade\r\nUpgrade: websocket".to_owned()),
        Just("Connection: close, X-Foo".to_owned()),
        Just("Transfer-Encoding: chunked".to_owned()),
        Just("Transfer-Encoding: gzip, chunked".to_owned()),
        Just("Content-Length: 5".to_owned()),
        Just("Content-Length: -1".to_owned()),
        Just("Content-Length: 99999999999999999999".to_owned()),
        Just("Content-Length: 3\r\nContent-Length: 4".to_owned()),
        Just("Expect: 100-continue".to_owned()),
        Just("Host: nowhere.invalid".to_owned()),
        Just("Via: 1.1 somewhere".to_owned()),
        Just("TE: trailers".to_owned()),
        Just("Proxy-Authorization: Basic eDp5".to_owned()),
        "[A-Za-z-]{1,20}: [ -~]{0,40}",
        "[\\x00-\\xff]{0,30}",
    ]
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        method(),
        target(),
        prop_oneof![
            Just("HTTP/1.1"),
            Just("HTTP/1.0"),
            Just("HTTP/2.0"),
            Just("HTTP/9"),
            Just("")
        ],
        prop::collection::vec(header(), 0..6),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(|(m, t, v, hs, body, pipelined)| {
            let mut out = format!("{m} {t} {v}\r\n").into_bytes();
            for h in hs {
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
            if pipelined {
                out.extend_from_slice(b"GET http://nowhere.invalid/second HTTP/1.1\r\nHost: nowhere.invalid\r\n\r\n");
            }
            out
        })
}

fn check(kind: Kind, input: &[u8]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let out = runtime.block_on(exchange(kind, input));
    check_answer(&out).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn forward_proxy_answers_any_request_shape(input in request()) {
        check(Kind::Forward, &input)?;
    }

    #[test]
    fn reverse_proxy_answers_any_request_shape(input in request()) {
        check(Kind::Reverse, &input)?;
    }

    #[test]
    fn arbitrary_bytes_never_break_the_proxy(input in prop::collection::vec(any::<u8>(), 0..512), forward in any::<bool>()) {
        check(if forward { Kind::Forward } else { Kind::Reverse }, &input)?;
    }
}

#[test]
fn known_shapes_get_the_documented_answers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (kind, input, status) in [
        (Kind::Forward, &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], "400"),
        (
            Kind::Forward,
            b"GET http://169.254.169.254/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "403",
        ),
        (
            Kind::Forward,
            b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
            "403",
        ),
        (
            Kind::Forward,
            b"GET http://nowhere.invalid/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "502",
        ),
        (
            Kind::Forward,
            b"GET https://nowhere.invalid/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "400",
        ),
        (
            Kind::Forward,
            b"POST http://nowhere.invalid/ HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
            "413",
        ),
        (Kind::Reverse, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", "502"),
        (Kind::Reverse, b"NOT HTTP AT ALL\r\n\r\n", "400"),
    ] {
        let out = runtime.block_on(exchange(kind, input));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{kind:?} {:?} -> {text}",
            String::from_utf8_lossy(input)
        );
    }
}
