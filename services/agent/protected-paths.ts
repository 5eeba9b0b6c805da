// berthd's own paths on this node (its run and state directories, dockerd's socket, its
// binaries): never a mount source, whatever the site rules say. The list is built once, when
// the config is compiled (config.ts), and every prologue and the node check read that one.
import path from 'node:path';
import type { ProtectedPath } from '../shared/site-rules-check';

/** the config fields the list is made of, as the config file gives them */
export interface OwnPathFields {
  node: string;
  runDir: string;
  stateDir: string;
  /** unix:///path/to/docker.sock */
  dockerHost: string;
  initBinary: string;
}

export interface OwnPath extends ProtectedPath {
  /** the config key it comes from: runDir, stateDir, dockerHost, initBinary */
  key: string;
}

/** Each of berthd's own paths with the config key it comes from, frozen. */
export function ownPaths(c: OwnPathFields): readonly OwnPath[] {
  const own: [string, string][] = [['runDir', c.runDir], ['stateDir', c.stateDir], ['dockerHost', c.dockerHost.slice('unix://'.length)], ['initBinary', path.dirname(c.initBinary)]];
  return Object.freeze(own.map(([key, p]) => Object.freeze({ key, path: p, source: `berthd's ${key} on ${c.node}` })));
}
