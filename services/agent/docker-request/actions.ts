// Docker API endpoints as authz-broker style action names (container_create, image_list …),
// the names policies are written in. The route table mirrors dockerd's own router
// (method + anchored path; container and exec ids are one path segment, image and plugin
// names may hold slashes, as in dockerd's `{name:.*}`); a request that matches no route is
// unknown, and unknown requests are denied.
//
// Aliases: the twistlock authz-broker spells a few actions differently
// (container_exec_start, container_attachws, container_commit, images_load …) and berthd
// says exec_create for what it is about to do; an alias means the same action, in a policy
// file and in decide().

export interface ActionInfo {
  name: string;
  /** GET or HEAD: what a `readonly` policy allows (a websocket attach is not: it writes stdin) */
  readonly: boolean;
  aliases: readonly string[];
}

interface Route {
  method: string;
  re: RegExp;
  action: string;
  /** what the path's capture group is */
  capture?: 'containerId' | 'execId' | 'imageName';
}

const ID = '([^/]+)';
const NAME = '(.+)';

// Order matters where dockerd's router has overlapping patterns: fixed paths first.
const ROUTE_SPECS: [string, string, string, Route['capture']?][] = [
  // system
  ['GET', '/_ping', 'docker_ping'],
  ['HEAD', '/_ping', 'docker_ping'],
  ['GET', '/version', 'docker_version'],
  ['GET', '/info', 'docker_info'],
  ['GET', '/events', 'docker_events'],
  ['GET', '/system/df', 'docker_system_df'],
  ['POST', '/auth', 'docker_auth'],
  // containers
  ['GET', '/containers/json', 'container_list'],
  ['POST', '/containers/create', 'container_create'],
  ['POST', '/containers/prune', 'container_prune'],
  ['GET', `/containers/${ID}/json`, 'container_inspect', 'containerId'],
  ['GET', `/containers/${ID}/logs`, 'container_logs', 'containerId'],
  ['GET', `/containers/${ID}/top`, 'container_top', 'containerId'],
  ['GET', `/containers/${ID}/changes`, 'container_changes', 'containerId'],
  ['GET', `/containers/${ID}/export`, 'container_export', 'containerId'],
  ['GET', `/containers/${ID}/stats`, 'container_stats', 'containerId'],
  ['POST', `/containers/${ID}/resize`, 'container_resize', 'containerId'],
  ['POST', `/containers/${ID}/start`, 'container_start', 'containerId'],
  ['POST', `/containers/${ID}/stop`, 'container_stop', 'containerId'],
  ['POST', `/containers/${ID}/restart`, 'container_restart', 'containerId'],
  ['POST', `/containers/${ID}/kill`, 'container_kill', 'containerId'],
  ['POST', `/containers/${ID}/update`, 'container_update', 'containerId'],
  ['POST', `/containers/${ID}/rename`, 'container_rename', 'containerId'],
  ['POST', `/containers/${ID}/pause`, 'container_pause', 'containerId'],
  ['POST', `/containers/${ID}/unpause`, 'container_unpause', 'containerId'],
  ['POST', `/containers/${ID}/attach`, 'container_attach', 'containerId'],
  ['GET', `/containers/${ID}/attach/ws`, 'container_attach_ws', 'containerId'],
  ['POST', `/containers/${ID}/wait`, 'container_wait', 'containerId'],
  ['DELETE', `/containers/${ID}`, 'container_delete', 'containerId'],
  ['HEAD', `/containers/${ID}/archive`, 'container_archive_info', 'containerId'],
  ['GET', `/containers/${ID}/archive`, 'container_archive', 'containerId'],
  ['PUT', `/containers/${ID}/archive`, 'container_archive_extract', 'containerId'],
  ['POST', `/containers/${ID}/copy`, 'container_copyfiles', 'containerId'],
  ['POST', `/containers/${ID}/exec`, 'container_exec_create', 'containerId'],
  ['GET', `/containers/${ID}/checkpoints`, 'checkpoint_list', 'containerId'],
  ['POST', `/containers/${ID}/checkpoints`, 'checkpoint_create', 'containerId'],
  ['DELETE', `/containers/${ID}/checkpoints/[^/]+`, 'checkpoint_delete', 'containerId'],
  // exec
  ['POST', `/exec/${ID}/start`, 'exec_start', 'execId'],
  ['POST', `/exec/${ID}/resize`, 'exec_resize', 'execId'],
  ['GET', `/exec/${ID}/json`, 'exec_inspect', 'execId'],
  // images
  ['GET', '/images/json', 'image_list'],
  ['GET', '/images/search', 'image_search'],
  ['GET', '/images/get', 'image_get'],
  ['POST', '/images/create', 'image_create'],
  ['POST', '/images/load', 'image_load'],
  ['POST', '/images/prune', 'image_prune'],
  ['POST', '/build', 'image_build'],
  ['POST', '/build/prune', 'build_prune'],
  ['POST', '/build/cancel', 'build_cancel'],
  ['POST', '/commit', 'image_commit'],
  ['GET', `/images/${NAME}/get`, 'image_get', 'imageName'],
  ['GET', `/images/${NAME}/history`, 'image_history', 'imageName'],
  ['GET', `/images/${NAME}/json`, 'image_inspect', 'imageName'],
  ['POST', `/images/${NAME}/push`, 'image_push', 'imageName'],
  ['POST', `/images/${NAME}/tag`, 'image_tag', 'imageName'],
  ['DELETE', `/images/${NAME}`, 'image_delete', 'imageName'],
  ['GET', `/distribution/${NAME}/json`, 'distribution_inspect', 'imageName'],
  ['POST', '/session', 'session'],
  ['POST', '/grpc', 'grpc'],
  // networks
  ['GET', '/networks', 'network_list'],
  ['GET', '/networks/', 'network_list'],
  ['POST', '/networks/create', 'network_create'],
  ['POST', '/networks/prune', 'network_prune'],
  ['GET', `/networks/${ID}`, 'network_inspect'],
  ['POST', `/networks/${ID}/connect`, 'network_connect'],
  ['POST', `/networks/${ID}/disconnect`, 'network_disconnect'],
  ['DELETE', `/networks/${ID}`, 'network_delete'],
  // volumes
  ['GET', '/volumes', 'volume_list'],
  ['POST', '/volumes/create', 'volume_create'],
  ['POST', '/volumes/prune', 'volume_prune'],
  ['GET', `/volumes/${ID}`, 'volume_inspect'],
  ['PUT', `/volumes/${ID}`, 'volume_update'],
  ['DELETE', `/volumes/${ID}`, 'volume_delete'],
  // plugins
  ['GET', '/plugins', 'plugin_list'],
  ['GET', '/plugins/privileges', 'plugin_privileges'],
  ['POST', '/plugins/pull', 'plugin_pull'],
  ['POST', '/plugins/create', 'plugin_create'],
  ['GET', `/plugins/${NAME}/json`, 'plugin_inspect'],
  ['POST', `/plugins/${NAME}/enable`, 'plugin_enable'],
  ['POST', `/plugins/${NAME}/disable`, 'plugin_disable'],
  ['POST', `/plugins/${NAME}/push`, 'plugin_push'],
  ['POST', `/plugins/${NAME}/upgrade`, 'plugin_upgrade'],
  ['POST', `/plugins/${NAME}/set`, 'plugin_set'],
  ['DELETE', `/plugins/${NAME}`, 'plugin_delete'],
  // swarm and its objects
  ['GET', '/swarm', 'swarm_inspect'],
  ['GET', '/swarm/unlockkey', 'swarm_unlockkey'],
  ['POST', '/swarm/init', 'swarm_init'],
  ['POST', '/swarm/join', 'swarm_join'],
  ['POST', '/swarm/leave', 'swarm_leave'],
  ['POST', '/swarm/update', 'swarm_update'],
  ['POST', '/swarm/unlock', 'swarm_unlock'],
  ['GET', '/nodes', 'node_list'],
  ['GET', `/nodes/${ID}`, 'node_inspect'],
  ['POST', `/nodes/${ID}/update`, 'node_update'],
  ['DELETE', `/nodes/${ID}`, 'node_delete'],
  ['GET', '/services', 'service_list'],
  ['POST', '/services/create', 'service_create'],
  ['GET', `/services/${ID}`, 'service_inspect'],
  ['POST', `/services/${ID}/update`, 'service_update'],
  ['GET', `/services/${ID}/logs`, 'service_logs'],
  ['DELETE', `/services/${ID}`, 'service_delete'],
  ['GET', '/tasks', 'task_list'],
  ['GET', `/tasks/${ID}`, 'task_inspect'],
  ['GET', `/tasks/${ID}/logs`, 'task_logs'],
  ['GET', '/secrets', 'secret_list'],
  ['POST', '/secrets/create', 'secret_create'],
  ['GET', `/secrets/${ID}`, 'secret_inspect'],
  ['POST', `/secrets/${ID}/update`, 'secret_update'],
  ['DELETE', `/secrets/${ID}`, 'secret_delete'],
  ['GET', '/configs', 'config_list'],
  ['POST', '/configs/create', 'config_create'],
  ['GET', `/configs/${ID}`, 'config_inspect'],
  ['POST', `/configs/${ID}/update`, 'config_update'],
  ['DELETE', `/configs/${ID}`, 'config_delete'],
];

const ROUTES: Route[] = ROUTE_SPECS.map(([method, pattern, action, capture]) => ({ method, re: new RegExp(`^${pattern}$`), action, capture }));

const ALIASES: Record<string, string[]> = {
  container_exec_create: ['exec_create'],
  exec_start: ['container_exec_start'],
  exec_inspect: ['container_exec_inspect'],
  container_attach_ws: ['container_attachws'],
  container_archive_info: ['container_archive_head'],
  image_commit: ['container_commit'],
  image_get: ['images_archive'],
  image_load: ['images_load'],
  image_search: ['images_search'],
  volume_delete: ['volume_remove'],
  network_delete: ['network_remove'],
};

function buildCatalogue(): Map<string, ActionInfo> {
  const out = new Map<string, ActionInfo>();
  for (const r of ROUTES) {
    const readonly = (r.method === 'GET' || r.method === 'HEAD') && r.action !== 'container_attach_ws';
    const known = out.get(r.action);
    // an action reached by GET and HEAD (docker_ping) stays read-only; by GET and POST it would not
    out.set(r.action, { name: r.action, readonly: known ? known.readonly && readonly : readonly, aliases: ALIASES[r.action] ?? [] });
  }
  return out;
}

/** Every action by its name. */
export const ACTIONS: ReadonlyMap<string, ActionInfo> = buildCatalogue();

const BY_ALIAS = new Map<string, string>();
for (const a of ACTIONS.values()) for (const al of a.aliases) BY_ALIAS.set(al, a.name);

/** The action for a name or alias, undefined for an unknown name. */
export function actionInfo(nameOrAlias: string): ActionInfo | undefined {
  return ACTIONS.get(nameOrAlias) ?? ACTIONS.get(BY_ALIAS.get(nameOrAlias) ?? '');
}

/** Every name an action is known by: the name, then its aliases. */
export function allActionNames(): string[] {
  return [...ACTIONS.values()].flatMap((a) => [a.name, ...a.aliases]);
}

export interface MappedAction {
  action: string;
  readonly: boolean;
  containerId?: string;
  execId?: string;
  imageName?: string;
  /** the API version the client asked for (`/v1.41/...`), when it gave one */
  apiVersion?: string;
}

/** Decodes %XX once, byte-wise, as Go does; undefined for a malformed escape or bytes that are not UTF-8. */
function percentDecode(s: string): string | undefined {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else bytes.push(...Buffer.from(s[i]!, 'utf8'));
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

/**
 * The action a request is, from dockerd's method and RequestURI; undefined when it is not an
 * endpoint berth knows or its path is one a well-behaved client never sends: an encoding
 * left after one decode (%2F, %2E, any %), `.` or `..` segments, `//`, control characters.
 */
export function mapAction(method: string, rawPath: string): MappedAction | undefined {
  if (!rawPath.startsWith('/')) return undefined;
  const q = rawPath.indexOf('?');
  const encoded = q >= 0 ? rawPath.slice(0, q) : rawPath;
  if (encoded.includes('#')) return undefined;
  const decoded = percentDecode(encoded);
  if (decoded === undefined) return undefined;
  if (/[\u0000-\u001f\u007f%\\]/.test(decoded)) return undefined;
  if (decoded.includes('//')) return undefined;
  if (decoded.split('/').some((seg) => seg === '.' || seg === '..')) return undefined;
  let path = decoded;
  let apiVersion: string | undefined;
  const v = /^\/v([0-9]+(?:\.[0-9]+)?)(\/.*)$/.exec(path);
  if (v) {
    apiVersion = v[1];
    path = v[2]!;
  }
  for (const r of ROUTES) {
    if (r.method !== method) continue;
    const m = r.re.exec(path);
    if (!m) continue;
    const info = ACTIONS.get(r.action)!;
    const out: MappedAction = { action: r.action, readonly: info.readonly };
    if (r.capture && m[1] !== undefined) out[r.capture] = m[1];
    if (apiVersion) out.apiVersion = apiVersion;
    return out;
  }
  return undefined;
}

/**
 * A RequestURI's query as dockerd reads it: every value of each key, in order (dockerd's
 * r.Form.Get takes the first). Keys and values are decoded once, '+' is a space.
 * undefined when the query holds a malformed escape or a ';' (which Go refuses).
 */
export function parseQuery(rawUri: string): Record<string, string[]> | undefined {
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  const q = rawUri.indexOf('?');
  if (q < 0) return out;
  for (const part of rawUri.slice(q + 1).split('&')) {
    if (part === '') continue;
    if (part.includes(';')) return undefined;
    const eq = part.indexOf('=');
    const k = percentDecode((eq >= 0 ? part.slice(0, eq) : part).replace(/\+/g, ' '));
    const v = percentDecode((eq >= 0 ? part.slice(eq + 1) : '').replace(/\+/g, ' '));
    if (k === undefined || v === undefined) return undefined;
    (out[k] ??= []).push(v);
  }
  return out;
}
