// Is dockerd asking berth's AuthZ plugin at all? dockerd 20.10 can stop consulting a plugin
// while still listing it in /info: a reload (SIGHUP, `systemctl reload docker`) takes the
// plugin list from daemon.json alone, so a plugin given with --authorization-plugin is dropped
// (measured in the sandbox: no request reached it afterwards). Then every job user's request
// would reach dockerd unjudged. So before a job's container is made, berthd sends dockerd a
// /_ping carrying a fresh random nonce and checks that its own plugin saw that nonce.
//
// Only nonces berthd is waiting for are remembered, so requests a user makes with made-up
// nonces cost nothing and cannot fake an answer (128 random bits).
import { randomBytes } from 'node:crypto';
import { BerthError } from '../../shared/errors';

export const PROBE_PARAM = 'berth-authz-probe';

export class AuthzProbe {
  private readonly pending = new Set<string>();
  private readonly seen = new Set<string>();

  constructor(
    /** sends GET /_ping?NAME=VALUE to dockerd (through its API, so through its AuthZ plugins) */
    private readonly ping: (query: Record<string, string>) => Promise<void>,
    private readonly describe: { plugin: string; docker: string },
  ) {}

  /** the plugin server calls this with the URI of every AuthZReq it is asked */
  observe(uri: string): void {
    if (!uri.includes(PROBE_PARAM) || this.pending.size === 0) return;
    const m = new RegExp(`[?&]${PROBE_PARAM}=([0-9a-f]{32})(?:&|$)`).exec(uri);
    if (m && this.pending.has(m[1]!)) this.seen.add(m[1]!);
  }

  /** resolves when dockerd asked the plugin about a request of berthd's; a node fault otherwise */
  async check(): Promise<void> {
    const nonce = randomBytes(16).toString('hex');
    this.pending.add(nonce);
    try {
      await this.ping({ [PROBE_PARAM]: nonce });
      if (!this.seen.has(nonce)) {
        throw new BerthError('NODE_CONFIG', `dockerd at ${this.describe.docker} does not ask berth's AuthZ plugin '${this.describe.plugin}' about its requests `
          + '(berthd\'s own request did not reach it), so job users would reach dockerd unjudged; name the plugin in daemon.json\'s "authorization-plugins" '
          + '(a plugin given with --authorization-plugin is dropped when dockerd reloads its configuration), restart dockerd, then berth resume', { fault: 'node' });
      }
    } finally {
      this.pending.delete(nonce);
      this.seen.delete(nonce);
    }
  }
}
