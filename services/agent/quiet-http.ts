// Options for berthd's HTTP servers (metrics, the AuthZ plugin, the jobs' Docker endpoints).
// Node checks an http.Server's connections for its header and request timeouts every 30 s by
// default (connectionsCheckingInterval), a timer that woke an idle berthd twice a minute per
// server (strace). Once a minute keeps the checks: headersTimeout (60 s) and requestTimeout
// (300 s) are enforced up to a minute later than they run out.
import type http from 'node:http';

export const QUIET_HTTP: http.ServerOptions = { connectionsCheckingInterval: 60_000 };
