//! End-to-end, on this machine: who may open the admin pages (the LAN and the VPN, or
//! the networks the admin narrowed it to), checked by the real binary on every request
//! whether or not a firewall stands in front of it; and the VPN's API refusing bad
//! settings and peers with their reason. The VPN itself (the interface, a peer with
//! wg-quick, the tunnel refused after a removal) is set up for real in the QEMU boot
//! test (image/boot_test.py), where the network helper runs as root.

mod support;

use serde_json::{json, Value};
use support::web::Web;
use support::*;

const PASSWORD: &str = "correct horse battery staple";

#[test]
fn the_admin_pages_answer_only_from_the_admin_networks_and_the_portal_answers_everyone() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let token = web.make_token("zones");
    let call = |method: &str, path: &str, body: Option<Value>| {
        web.api(method, path, Some(&token), None, body.as_ref())
    };
    // Another client on this machine: 127.0.0.2, inside loopback's 127.0.0.0/8.
    let other = Web::from_address(&server, "127.0.0.2".parse().expect("ip"));
    let a = other.get("/login");
    assert_eq!(a.status, 200, "127.0.0.2 is on a connected network: {a:?}");
    let a = call("GET", "/api/vpn", None);
    assert_eq!(a.status, 200, "{a:?}");
    let view = a.json();
    assert_eq!(view["admin_networks"], json!([]), "{view}");
    assert!(
        view["connected"]
            .as_array()
            .expect("connected")
            .contains(&json!("127.0.0.0/8")),
        "{view}"
    );
    assert_eq!(view["mdns_over_vpn"], json!(false));

    // Refused, with the reason, and nothing changed: networks that leave the asker
    // (127.0.0.1) out, and a network that is not one.
    let a = call(
        "PUT",
        "/api/vpn/admin-networks",
        Some(json!({"networks": ["127.0.0.2/32"]})),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.error().contains("lock you out"), "{a:?}");
    let a = call(
        "PUT",
        "/api/vpn/admin-networks",
        Some(json!({"networks": ["the lan"]})),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.error().contains("not a network"), "{a:?}");
    assert_eq!(
        other.get("/login").status,
        200,
        "a refusal changed the zone"
    );

    // Narrowed to the asker's own address: 127.0.0.2 is outside now.
    let a = call(
        "PUT",
        "/api/vpn/admin-networks",
        Some(json!({"networks": ["127.0.0.1"]})),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["admin_networks"], json!(["127.0.0.1/32"]));
    let before = server.log().len();
    for path in ["/login", "/admin", "/admin/vpn", "/setup"] {
        let a = other.get(path);
        assert_eq!(a.status, 403, "GET {path} from outside: {a:?}");
        assert!(a.body.contains("local network"), "{a:?}");
    }
    let a = other.api("GET", "/api/vpn", Some(&token), None, None);
    assert_eq!(a.status, 403, "a valid token from outside: {a:?}");
    assert!(a.error().contains("local network"), "{a:?}");
    let a = other.post("/login", &[("name", "admin"), ("password", PASSWORD)]);
    assert_eq!(a.status, 403, "signing in from outside: {a:?}");
    // The viewers' side answers everyone, as the stream's visibility says.
    assert_eq!(other.get("/").status, 200);
    assert_eq!(other.get("/healthz").status, 200);
    // Each refusal is logged with the client's address.
    let log = server.wait_log_from(
        before,
        "admin request from outside the LAN and the VPN refused",
        std::time::Duration::from_secs(5),
    );
    assert!(log.contains("127.0.0.2"), "{log}");
    // The administrator at 127.0.0.1 goes on as before.
    assert_eq!(web.get("/admin/vpn").status, 200);

    // Back to the connected networks; the audit log has both changes.
    let a = call(
        "PUT",
        "/api/vpn/admin-networks",
        Some(json!({"networks": []})),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(other.get("/login").status, 200);
    let audit = call("GET", "/api/audit", None).json();
    let changes: Vec<&Value> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "admin.networks")
        .collect();
    assert_eq!(changes.len(), 2, "{audit}");
}

#[test]
fn bad_vpn_settings_and_peers_are_refused_with_the_reason_and_change_nothing() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let token = web.make_token("vpn");
    let call = |method: &str, path: &str, body: Option<Value>| {
        web.api(method, path, Some(&token), None, body.as_ref())
    };
    let refused = |body: Value, why: &str| {
        let a = call("PUT", "/api/vpn", Some(body.clone()));
        assert_eq!(a.status, 422, "{body}: {a:?}");
        assert!(a.error().contains(why), "{body}: {a:?}");
    };
    refused(json!({"enabled": true, "port": 0}), "1-65535");
    refused(json!({"enabled": true, "port": 5353}), "service's own");
    refused(
        json!({"enabled": true, "subnet4": "8.8.8.0/24"}),
        "private network",
    );
    refused(
        json!({"enabled": true, "subnet4": "10.1.2.0/33"}),
        "not an IPv4 subnet",
    );
    refused(
        json!({"enabled": true, "subnet6": "2001:db8::/64"}),
        "unique local",
    );
    refused(
        json!({"enabled": true, "endpoint": "not a host"}),
        "not a host name",
    );
    refused(
        json!({"enabled": true, "endpoint": "vpn.example.com:0"}),
        "not a host name",
    );
    let held = std::net::UdpSocket::bind(("0.0.0.0", 0)).expect("bind");
    let port = held.local_addr().expect("addr").port();
    refused(json!({"enabled": true, "port": port}), "in use");
    let a = call(
        "PUT",
        "/api/vpn",
        Some(json!({"enabled": true, "colour": "red"})),
    );
    assert_eq!(a.status, 422, "{a:?}");

    // Good settings, but this machine has no network helper: 503, nothing saved.
    let a = call(
        "PUT",
        "/api/vpn",
        Some(json!({"enabled": true, "endpoint": "vpn.example.com"})),
    );
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.error().contains("network helper"), "{a:?}");
    let view = call("GET", "/api/vpn", None).json();
    assert_eq!(view["settings"], Value::Null, "{view}");
    assert_eq!(view["peers"], json!([]), "{view}");

    // Peers: refused with the VPN off, for a bad name or key; unknown peers are 404.
    let peer = |body: Value| call("POST", "/api/vpn/peers", Some(body));
    let a = peer(json!({"name": "Anna's laptop"}));
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.error().contains("VPN is off"), "{a:?}");
    for (name, why) in [
        ("", "needs a name"),
        (&"x".repeat(65)[..], "at most 64"),
        ("a\u{7}b", "control"),
    ] {
        let a = peer(json!({"name": name}));
        assert_eq!(a.status, 422, "{name:?}: {a:?}");
        assert!(a.error().contains(why), "{name:?}: {a:?}");
    }
    let a = call("PUT", "/api/vpn/peers/7", Some(json!({"enabled": false})));
    assert_eq!(a.status, 404, "{a:?}");
    let a = call("DELETE", "/api/vpn/peers/7", None);
    assert_eq!(a.status, 404, "{a:?}");
    let a = call("POST", "/api/vpn/peers/7/rekey", None);
    assert!(a.status == 422 || a.status == 404, "{a:?}");
    let a = call("DELETE", "/api/vpn/peers/seven", None);
    assert_eq!(a.status, 400, "{a:?}");

    // The page says the same, and shows the form.
    let t = web.csrf("/admin/vpn");
    let a = web.post(
        "/admin/vpn",
        &[("csrf", &t), ("enabled", "on"), ("port", "70000")],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.alert().is_some_and(|m| m.contains("UDP port")), "{a:?}");
    let a = web.post("/admin/vpn/peers", &[("csrf", &t), ("name", "Anna")]);
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.alert().is_some_and(|m| m.contains("VPN is off")), "{a:?}");
    let audit = call("GET", "/api/audit", None).json();
    assert!(
        !audit.to_string().contains("vpn."),
        "a refusal was audited as a change: {audit}"
    );
}
