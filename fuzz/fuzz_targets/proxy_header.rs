//! Fuzzes keepwatch-proxy: arbitrary bytes from a trusted balancer. Reading the header must
//! never panic, never read past the header it accepts (a v1 line is at most 107 bytes, a v2
//! header at most 16 + 1024), and accept only what `client_address` accepts on the same bytes.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use keepwatch_proxy::{ProxyConfig, client_address, read_header};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let cfg = ProxyConfig {
        trusted: vec!["127.0.0.0/8".parse().unwrap()],
        timeout: Duration::from_secs(1),
    };
    let _ = client_address(data, peer);
    let mut rest = data;
    let got = runtime().block_on(read_header(&mut rest, peer, &cfg));
    let used = data.len() - rest.len();
    if let Ok(addr) = got {
        assert!(used <= 16 + 1024, "read {used} bytes of header");
        assert_eq!(client_address(&data[..used], peer), Ok(addr), "read and parse disagree");
    }
});
