// What a job user's request must look like before berth judges what it says: a body the
// plugin was shown whole, and an API version whose semantics the policy is written for.
//
// dockerd (20.10 and every Engine before 29.3.1) passes an AuthZ plugin no body when the body
// is over 1 MiB or its first Content-Type is not application/json, yet acts on the whole body
// itself; Go's server drops the Transfer-Encoding header of a chunked request and any
// Content-Length beside it, and the plugin is told the LAST value of a repeated header while
// dockerd's form parsing reads the first. So an absent body proves nothing: a request that may
// carry one is judged only when berth saw it whole or its Content-Length says it has none.
import type { AuthzRequest } from './plugin-protocol';

/** API versions before this still honour legacy forms: a HostConfig sent with start (< 1.24), and more. */
export const DEFAULT_MIN_API_VERSION = '1.40';

/** Methods whose body dockerd's handlers and form parsing read (Go's ParseForm reads POST, PUT, PATCH). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

function versionParts(v: string): number[] {
  return v.split('.').map((p) => Number(p));
}

/** a < b, numerically by dotted part, as dockerd's versions.LessThan */
export function versionLess(a: string, b: string): boolean {
  const x = versionParts(a);
  const y = versionParts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return false;
}

/**
 * Why the request's framing keeps berth from seeing what dockerd will act on, or undefined.
 * `bodyBytes` is the length of the body dockerd passed (undefined when it passed none).
 */
export function framingProblem(req: Pick<AuthzRequest, 'method' | 'headers'> & { bodyBytes?: number }): string | undefined {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) {
    return `a Transfer-Encoding header (${h['transfer-encoding']}) is not allowed: berth cannot see a body dockerd reads in pieces; send the body with a Content-Length`;
  }
  const cl = h['content-length'];
  if (cl !== undefined && !/^(0|[1-9][0-9]{0,15})$/.test(cl)) {
    return `the Content-Length header '${cl}' is not one decimal number; send exactly one Content-Length`;
  }
  const length = cl === undefined ? undefined : Number(cl);
  if (req.bodyBytes === undefined) {
    if (length !== undefined && length > 0) {
      return `dockerd did not show berth this request's body (${length} bytes: dockerd passes an authorization plugin no body over 1 MiB, or whose Content-Type is not application/json), and berth denies what it cannot inspect: send a JSON body under 1 MiB with one Content-Type: application/json`;
    }
    if (length === undefined && BODY_METHODS.has(req.method)) {
      return `a ${req.method} request without a Content-Length header is not allowed: it may carry a chunked body dockerd did not show berth; send Content-Length (curl: -d '' for no body)`;
    }
    return undefined;
  }
  if (length !== undefined && length !== req.bodyBytes) {
    return `the body berth was shown (${req.bodyBytes} bytes) is not the ${length} bytes the Content-Length header announces; send one Content-Length that matches the body`;
  }
  return undefined;
}

/** Why the API version is refused, or undefined. `version` is the /vX.Y prefix of the path (none: dockerd's current). */
export function apiVersionProblem(version: string | undefined, minimum: string): string | undefined {
  if (version === undefined) return undefined;
  if (!/^[0-9]+\.[0-9]+$/.test(version)) return `the API version '${version}' in the path is not MAJOR.MINOR`;
  if (versionLess(version, minimum)) {
    return `API version ${version} is older than ${minimum}, the oldest berth allows (older versions apply settings berth cannot check, such as a HostConfig sent with start); use a Docker client from 2019 or later, or /v${minimum}/ and newer in the path`;
  }
  return undefined;
}
