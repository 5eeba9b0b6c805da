// Stands in for the ssh2 package in the berthd bundle. docker-modem loads ssh2 for
// ssh:// docker hosts, which berthd never uses (its dockerHost must be a unix socket, see
// config.ts); leaving ssh2 out takes 650 KB of code out of the agent's resident memory.
export class Client {
  constructor() {
    throw new Error('berthd talks to dockerd over a unix socket only; ssh:// docker hosts are not supported');
  }
}
export default { Client };
