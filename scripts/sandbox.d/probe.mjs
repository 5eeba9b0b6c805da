// Readiness probes for scripts/sandbox, so it needs no curl. Exit 0 = ready, 1 = not (2 s cap).
//   node probe.mjs http URL              GET URL answers 2xx
//   node probe.mjs unix-http SOCK PATH   GET PATH over the unix socket SOCK answers 2xx
//   node probe.mjs connect SOCK          something accepts connections on the unix socket SOCK
//   node probe.mjs connect-tcp HOST:PORT something accepts TCP connections there
import http from 'node:http';
import net from 'node:net';

const [mode, a, b] = process.argv.slice(2);
const done = (ok) => process.exit(ok ? 0 : 1);
setTimeout(() => done(false), 2000).unref();

function get(opts) {
  const req = http.get(opts, (res) => {
    res.resume();
    done(res.statusCode >= 200 && res.statusCode < 300);
  });
  req.on('error', () => done(false));
}

if (mode === 'http' && a) get(new URL(a));
else if (mode === 'unix-http' && a) get({ socketPath: a, path: b ?? '/' });
else if (mode === 'connect' && a) {
  const s = net.connect(a, () => { s.destroy(); done(true); });
  s.on('error', () => done(false));
} else if (mode === 'connect-tcp' && a) {
  const i = a.lastIndexOf(':');
  const s = net.connect(Number(a.slice(i + 1)), a.slice(0, i), () => { s.destroy(); done(true); });
  s.on('error', () => done(false));
} else {
  console.error('usage: probe.mjs http URL | unix-http SOCK PATH | connect SOCK | connect-tcp HOST:PORT');
  process.exit(2);
}
