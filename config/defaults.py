"""lonja's built-in defaults: the bottom layer of the settings.

Every key a user file (`lonja.toml`, the same sections and keys in TOML), a LONJA_<SECTION>_<KEY> variable
or a flag may set is listed here; any other key is an error. Later layers win: defaults -> user file ->
environment -> flags. A Python literal rather than a TOML file, so that no program pays for a TOML
parser just to start; `lonja config show` prints every setting and the layer it came from.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, dict[str, Any]] = {
    "ns": {
        "host": "127.0.0.1",                # where the name server listens, and where clients look for it
        "port": 9090,
        # clients: more name servers ("HOST[:PORT]") to try, in order, when ns.host:ns.port does not answer
        # (LONJA_NS=a:9090,b:9090 and --ns given twice set ns.host, ns.port and these); service hosts
        # register with every one of them
        "fallbacks": [],
        # clients: when no configured name server answers, look for one with Pyro5's UDP broadcast (port
        # 9091), which name servers with ns.broadcast on answer; off: nothing is ever broadcast
        "discover": False,
        # "HOST[:PORT]" the name server puts in its own URI ("" = its address; bound to 0.0.0.0 or ::, the
        # first interface that is not loopback)
        "advertise": "",
        "storage": "sqlite",                # "sqlite" (names.sqlite in the data folder), "sqlite:PATH" or "memory"
        "broadcast": False,                 # answer Pyro5's UDP discovery (clients with ns.discover on use it)
        # a registration from another host whose URI points at loopback or a wildcard: False = refuse it,
        # saying what to pass; True = put the address it came from in the URI instead (logged)
        "correct_uris": False,
        "lease_ttl": 10.0,                  # seconds a `lonja serve` registration lives unless its host renews it
        "sweep_interval": 1.0,              # seconds between the name server's liveness sweeps
        "probe_interval": 5.0,              # seconds between object-level probes of registrations without a lease
        "probe_grace": 15.0,                # seconds such a registration may fail its probes before it is removed
        # seconds a plain registration nothing answers at stays (status "unreachable")
        "unreachable_grace": 3600.0,
        "max_message_size": 1048576,        # bytes a request to the name server may have, after decompression
    },
    "data": {
        "dir": ".lonja",                    # local data folder (sqlite name store, certificates)
    },
    "client": {
        "serializer": "msgpack",            # msgpack, serpent, json or marshal (see README: what each keeps)
        "timeout": 30.0,                    # seconds a call may take in all, retries included; 0 = no limit
        "connect_timeout": 2.0,             # seconds to reach the name server or a service
        "retries": 3,                       # attempts for failures before the request was sent
        "pool_size": 8,                     # pooled connections per proxy (one per concurrent call in flight)
        "workers": 32,                      # threads behind futures and asyncio calls
        "local_socket": True,               # call a lonja host on this machine through the Unix socket it offers
        # seconds a call polls for its reply before its thread sleeps (0 = sleep at once): a reply within it
        # skips the wake-up; calls that take longer soon stop polling (none on a one-CPU machine)
        "busy_wait": 0.0002,
    },
    "service": {
        "host": "127.0.0.1",                # where `lonja serve` hosts listen
        "port": 0,                          # 0 = a free port
        # "HOST[:PORT]" services put in their URIs, for NAT and containers ("" = their address; bound to
        # 0.0.0.0 or ::, the address of the interface that reaches the name server)
        "advertise": "",
        "servertype": "adaptive",           # adaptive (lonja"s leader/followers), thread or multiplex (Pyro5"s own)
        "threads": 64,                      # most threads serving calls at once (thread: connections)
        "oneway_workers": 8,                # bounded executor for oneway calls of methods not measured quick
        # Linux: also listen on an abstract Unix socket that lonja clients on this machine call through, a
        # quicker round trip than TCP (not with servertype thread, nor under TLS)
        "local_socket": True,
    },
    "limits": {
        "max_message_size": 104857600,      # bytes a request may have, counted after decompression
        "max_connections": 256,             # connections a server accepts at once; more are refused with a clear error
        # past their handshake, from one IP address (0 = no limit: on one host all are 127.0.0.1)
        "max_connections_per_peer": 0,
        # connections from one IP address in their handshake (at most half of max_connections); past it,
        # that address's oldest handshake goes
        "max_pending_per_peer": 64,
        "max_connect_size": 65536,          # bytes a connect (handshake) message may have, after decompression
        "handshake_timeout": 5.0,           # seconds a new connection has for its TLS and Pyro5 handshakes
        "receive_timeout": 10.0,            # seconds a peer has to finish a message it started (and to take an answer)
        # seconds a connection may sit without a request before it is closed (0 = never); a host's liveness
        # session with the name server is exempt
        "idle_timeout": 600.0,
        # servers: seconds a connection that keeps calling is polled for its next request before its thread
        # sleeps (0 = sleep at once); see client.busy_wait
        "busy_wait": 0.0002,
        "accept_marshal": False,            # servers: accept Pyro5's marshal serializer (unsafe for untrusted data)
        "compression": False,
    },
    "auth": {
        "enabled": False,                   # name server: check tokens; off on the embedded default
        "admin_tokens": [],                 # "who:secret" entries; admins may change any name
        "service_tokens": [],               # services may register names and change only the names they registered
        "reader_tokens": [],                # readers may list and look up
        "allow_anonymous_read": True,       # plain Pyro5 clients (no token) may list and look up
        "token": "",                        # the token this process presents to name servers and services
        "require_token": False,             # services: callers must present a valid token too
    },
    "tls": {
        # Paths are PEM files; relative ones are taken from the current directory (like data.dir).
        # `lonja certs init DIR` makes a development set and prints the settings that use it.
        "enabled": False,                   # TLS for name server, services and clients (Pyro5's SSL)
        # this process's certificate: its server certificate, and its client certificate
        "cert": "",
        "key": "",                          # its private key, unencrypted ("" = it is in the cert file)
        # CA certificate(s) (a file or a c_rehash'd folder) peers are checked against, and the only CA
        # trusted; "" = the system's CAs (clients only)
        "ca": "",
        "require_client_cert": False,       # servers: mutual TLS, refuse clients without a certificate from `ca`
    },
    "references": {
        # seconds a process holding shared objects (by reference, or callbacks) may go silent before they
        # are dropped; holders renew every third of it
        "lease": 30.0,
    },
    "log": {
        "level": "warning",                 # debug, info, warning, error
    },
}
