// A site CA and certificates made with openssl, as docs/operations.md tells admins to make
// them: a server certificate for berthd's TCP listener (SAN IP:127.0.0.1) and client
// certificates whose CN is the identity berthd maps to roles.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Issued {
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export class SitePki {
  readonly ca: string;
  private readonly caKey: string;

  constructor(readonly dir: string, name = 'berth-test-site-ca') {
    mkdirSync(dir, { recursive: true });
    this.ca = path.join(dir, `${name}.pem`);
    this.caKey = path.join(dir, `${name}.key`);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', this.caKey, '-out', this.ca, '-days', '2', '-subj', `/CN=${name}`], dir);
  }

  private issue(file: string, cn: string, ext: string): Issued {
    const key = path.join(this.dir, `${file}.key`);
    const csr = path.join(this.dir, `${file}.csr`);
    const cert = path.join(this.dir, `${file}.pem`);
    const extFile = path.join(this.dir, `${file}.ext`);
    writeFileSync(extFile, ext);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], this.dir);
    openssl(['x509', '-req', '-in', csr, '-CA', this.ca, '-CAkey', this.caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', extFile], this.dir);
    return { cert, key };
  }

  server(file: string, cn: string): Issued {
    return this.issue(file, cn, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  }

  client(file: string, cn: string): Issued {
    return this.issue(file, cn, 'extendedKeyUsage=clientAuth\n');
  }
}
