// munge credentials: the CLI encodes one per call, berthd decodes it with unmunge. munged
// itself refuses replayed and expired credentials; the payload binds a credential to one
// method and job so that it cannot be reused for anything else.
import { spawn } from 'node:child_process';

export interface MungeIdentity {
  uid: number;
  gid: number;
  encodeTime: Date;
  payload: string;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input: string | undefined, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the tool may exit before reading; its status says why
      child.stdin.end(input);
    }
  });
}

export function mungePayload(method: string, jobId: string): string {
  return `berth.v1/${method}:${jobId}`;
}

const MUNGED_DOWN = /Failed to access|Did you start munged|socket|Connection refused|No such file or directory/i;

const prefetched = new Map<string, Promise<string>>();

/**
 * Starts encoding a credential for payload now, for the next encodeMunge of the same payload
 * to take: `berth exec` asks for it before loading its gRPC client, so munge runs while that
 * code loads. A credential is used once (munged refuses a replay): a prefetched one is handed
 * out once, later calls encode their own.
 */
export function prefetchMunge(payload: string, mungeBin = 'munge'): void {
  if (prefetched.has(payload)) return;
  const p = encodeNow(payload, mungeBin);
  p.catch(() => undefined); // its caller sees the failure, if it comes to ask
  prefetched.set(payload, p);
}

/** Encodes a credential for the calling user (client side). */
export function encodeMunge(payload: string, mungeBin = 'munge'): Promise<string> {
  const early = prefetched.get(payload);
  if (early) {
    prefetched.delete(payload);
    return early;
  }
  return encodeNow(payload, mungeBin);
}

async function encodeNow(payload: string, mungeBin: string): Promise<string> {
  let res: RunResult;
  try {
    res = await run(mungeBin, ['-s', payload], undefined, 5000);
  } catch (err) {
    throw new Error(`cannot run '${mungeBin}' to authenticate to berthd (${(err as Error).message}); is munge installed?`);
  }
  if (res.code !== 0) {
    const said = res.stderr.trim().split('\n')[0] || `exit ${res.code}`;
    // munged stopped: "munge: Error: Failed to access "/run/munge/munge.socket.2": No such file or directory (Did you start munged?)"
    if (MUNGED_DOWN.test(said)) throw new Error(`munged is not running on this node (${said}); berth authenticates you to berthd with munge: ask the site admins to start it (systemctl start munge)`);
    throw new Error(`munge could not make a credential to authenticate you to berthd (${said}); ask the site admins to check munge on this node`);
  }
  return res.stdout.trim();
}

/** Parses unmunge's metadata output (the lines before the blank line) and payload. */
export function parseUnmunge(output: string): { fields: Map<string, string>; payload: string } {
  const blank = output.indexOf('\n\n');
  const head = blank >= 0 ? output.slice(0, blank) : output;
  const payload = blank >= 0 ? output.slice(blank + 2) : '';
  const fields = new Map<string, string>();
  for (const line of head.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { fields, payload };
}

function numericId(field: string | undefined): number {
  // "alice (2001)" -> 2001
  const m = field?.match(/\((\d+)\)\s*$/);
  return m ? Number(m[1]) : NaN;
}

export interface MungeVerifier {
  verify(credential: string): Promise<MungeIdentity>;
}

/** Decodes credentials with unmunge (server side, as root). */
export class UnmungeVerifier implements MungeVerifier {
  constructor(private readonly unmungeBin = 'unmunge', private readonly maxAgeMs = 120_000) {}

  async verify(credential: string): Promise<MungeIdentity> {
    const res = await run(this.unmungeBin, [], credential, 5000);
    const { fields, payload } = parseUnmunge(res.stdout);
    const st = fields.get('STATUS') ?? res.stderr.trim();
    if (res.code !== 0 || !st.startsWith('Success')) {
      throw new Error(`munge credential refused: ${st || res.stderr.trim() || `unmunge exit ${res.code}`}`);
    }
    const uid = numericId(fields.get('UID'));
    const gid = numericId(fields.get('GID'));
    // "2026-11-29 04:55:00 +0000 (1795841700)": the epoch seconds are in the parentheses
    const encodeTime = new Date(numericId(fields.get('ENCODE_TIME')) * 1000);
    if (!Number.isFinite(uid) || !Number.isFinite(gid)) throw new Error('munge credential refused: no UID/GID in it');
    const age = Date.now() - encodeTime.getTime();
    if (!Number.isFinite(age) || age > this.maxAgeMs) {
      throw new Error(`munge credential refused: stale (encoded ${fields.get('ENCODE_TIME') ?? 'at an unknown time'})`);
    }
    return { uid, gid, encodeTime, payload };
  }
}
