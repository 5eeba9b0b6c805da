// The Docker legacy authorization plugin protocol (dockerd → plugin, JSON over HTTP on a
// unix socket): POST /Plugin.Activate, /AuthZPlugin.AuthZReq before each API request and
// /AuthZPlugin.AuthZRes after it. dockerd sends the request body only when it is JSON or
// text and smaller than 1 MiB; byte fields arrive base64-encoded, and each peer certificate
// as base64 of its PEM text.
export const PLUGIN_ACTIVATE = '/Plugin.Activate';
export const AUTHZ_REQUEST = '/AuthZPlugin.AuthZReq';
export const AUTHZ_RESPONSE = '/AuthZPlugin.AuthZRes';

export interface AuthzRequest {
  user: string;
  authnMethod: string;
  method: string;
  uri: string;
  /** undefined when dockerd sent none (no body, too large, not JSON, chunked) */
  body: string | undefined;
  /** the body's length in bytes as dockerd passed it; undefined when it passed none */
  bodyBytes?: number;
  headers: Record<string, string>;
  peerCertificates: string[]; // PEM
  responseStatus?: number;
  responseBody?: string;
}

export interface AuthzAnswer {
  Allow: boolean;
  Msg?: string;
  Err?: string;
}

function bytesOf(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  return Buffer.from(value, 'base64');
}

function b64(value: unknown): string | undefined {
  return bytesOf(value)?.toString('utf8');
}

/** Reads dockerd's AuthZReq/AuthZRes JSON; throws on anything that is not that shape. */
export function parseAuthzRequest(text: string): AuthzRequest {
  const raw = JSON.parse(text) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('not a JSON object');
  const str = (k: string): string => (typeof raw[k] === 'string' ? (raw[k] as string) : '');
  const method = str('RequestMethod');
  const uri = str('RequestUri') || str('RequestURI');
  if (!method || !uri) throw new Error('RequestMethod or RequestUri missing');
  const headers: Record<string, string> = {};
  if (raw.RequestHeaders && typeof raw.RequestHeaders === 'object') {
    for (const [k, v] of Object.entries(raw.RequestHeaders as Record<string, unknown>)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
  }
  const certs = Array.isArray(raw.RequestPeerCertificates) ? raw.RequestPeerCertificates : [];
  return {
    user: str('User'),
    authnMethod: str('UserAuthNMethod'),
    method: method.toUpperCase(),
    uri,
    body: b64(raw.RequestBody),
    bodyBytes: bytesOf(raw.RequestBody)?.length,
    headers,
    peerCertificates: certs.map((c) => b64(c) ?? '').filter((p) => p.includes('BEGIN CERTIFICATE')),
    responseStatus: typeof raw.ResponseStatusCode === 'number' ? raw.ResponseStatusCode : undefined,
    responseBody: b64(raw.ResponseBody),
  };
}
