-- Remote management over WireGuard: the VPN's peers. Only each peer's public key is
-- kept; its private key is made for it, shown once, and never stored. `host` is the
-- peer's place in the VPN's subnets (2 and up; the box is 1), which gives its IPv4 and
-- IPv6 addresses. The VPN's own settings are in `settings` (key `vpn`, JSON), the box's
-- private key only in the state area, root's (see src/system/wireguard.rs).
CREATE TABLE vpn_peers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL UNIQUE,
    host INTEGER NOT NULL UNIQUE CHECK (host >= 2),
    enabled INTEGER NOT NULL DEFAULT 1,
    created_ms INTEGER NOT NULL,
    keyed_ms INTEGER NOT NULL
);
