// One Docker API request as dockerd will act on it, decoded once: the action its method and
// path map to (actions.ts), its query as dockerd reads it, and its body as Go's encoding/json
// decodes it (body.ts). The AuthZ plugin makes one per request and hands the same one to the
// site policy, the private-image gate and the effect gate, so that no part reads the request
// its own way.
import { type MappedAction, parseQuery } from './actions';
import { type BodyValue, lookup, parseBody } from './body';
import { type FieldPath, parseFieldPath } from './field-paths';

const IMAGE_FIELD = parseFieldPath('Image') as FieldPath;

export interface DockerRequestInput {
  method: string;
  /** dockerd's RequestURI: the path and the raw query */
  uri: string;
  /** the body exactly as dockerd passed it; undefined when it passed none */
  body: string | undefined;
  /** the request's Content-Type header */
  contentType?: string;
}

export class DockerRequest {
  readonly method: string;
  readonly uri: string;
  readonly bodyText: string | undefined;
  readonly contentType: string | undefined;
  private queryOnce?: { value: Record<string, string[]> | undefined };
  private bodyOnce?: { value: BodyValue } | { error: unknown };

  /** `mapped`: the request's action (actions.ts mapAction), undefined for an endpoint berth does not know */
  constructor(input: DockerRequestInput, readonly mapped: MappedAction | undefined) {
    this.method = input.method;
    this.uri = input.uri;
    this.bodyText = input.body;
    this.contentType = input.contentType;
  }

  /** the action name; 'unknown' when the endpoint is not one berth knows */
  get action(): string {
    return this.mapped?.action ?? 'unknown';
  }

  /** every value of each query key, decoded once (parseQuery); undefined when the query is malformed */
  get query(): Record<string, string[]> | undefined {
    this.queryOnce ??= { value: parseQuery(this.uri) };
    return this.queryOnce.value;
  }

  /**
   * The body as dockerd decodes it, decoded on first use and kept: undefined when dockerd
   * passed none; throws JsonSyntaxError (every time) when the text is not JSON.
   */
  get body(): BodyValue | undefined {
    if (this.bodyText === undefined) return undefined;
    this.bodyOnce ??= decode(this.bodyText);
    if ('error' in this.bodyOnce) throw this.bodyOnce.error;
    return this.bodyOnce.value;
  }

  /** The Image a container create names, read as dockerd reads it (keys folded, the last duplicate wins); undefined when none can be read. */
  get createImage(): string | undefined {
    if (!this.bodyText) return undefined;
    let body: BodyValue | undefined;
    try {
      body = this.body;
    } catch {
      return undefined; // an unreadable body is the policy's to refuse
    }
    if (body === undefined) return undefined;
    const v = lookup(body, IMAGE_FIELD).map((i) => i.value).find((x) => typeof x === 'string');
    return typeof v === 'string' ? v : undefined;
  }
}

function decode(text: string): { value: BodyValue } | { error: unknown } {
  try {
    return { value: parseBody(text) };
  } catch (error) {
    return { error };
  }
}
