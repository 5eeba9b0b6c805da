// The policy module as the AuthZ plugin and berthd's own container creation use it: the
// site's policy file (reloaded on change and SIGHUP), one engine per loaded policy set.
import type { Logger } from '../logger';
import { mapAction, parseQuery } from '../policy/actions';
import { formatDenial, PolicyEngine } from '../policy/engine';
import { realHostPath } from '../policy/host-paths';
import { PolicyStore } from '../policy/policy-store';
import type { PolicySet } from '../policy/policy-types';
import type { PolicyPort } from './setup';

/** Loads the policy file (throws, with every problem named, when it is bad) and watches it. */
export function openPolicy(file: string, log: Logger, opts: { registries: string[]; protectedPaths: string[] }): PolicyPort {
  const store = new PolicyStore(file, log);
  store.load();
  store.watch();
  let built: { set: PolicySet; engine: PolicyEngine } | undefined;
  const engine = (): PolicyEngine => {
    const set = store.current();
    if (built?.set !== set) built = { set, engine: new PolicyEngine(set, { resolvePath: realHostPath, ...opts }) };
    return built.engine;
  };
  return {
    mapAction,
    decide: (action, bodyText, uri, contentType, ctx) => {
      const query = parseQuery(uri);
      if (!query) return { allow: false, policy: 'berth', action, reason: 'the query string is malformed, and berth denies what it cannot read' };
      return engine().decide({ action, bodyText, query, contentType }, ctx);
    },
    admit: (action, body, ctx) => engine().decide({ action, body, agent: true }, ctx),
    formatDenial,
    reload: () => store.reload(),
    close: () => store.close(),
  };
}
