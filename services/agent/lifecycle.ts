// The agent's lifecycle, which also drives grpc.health.v1: recovering (rebuilding the job
// table from the engine) → serving → draining (shutting down). Calls are refused with a
// clear UNAVAILABLE unless the agent is serving.
import { BerthError } from '../shared/errors';

export type AgentPhase = 'recovering' | 'serving' | 'draining';

export class Lifecycle {
  private current: AgentPhase = 'recovering';
  private detail = 'starting';
  private readonly listeners: ((p: AgentPhase) => void)[] = [];

  get phase(): AgentPhase {
    return this.current;
  }

  /** why the agent is not serving (empty when it is) */
  get reason(): string {
    return this.detail;
  }

  set(phase: AgentPhase, detail = ''): void {
    this.current = phase;
    this.detail = detail;
    for (const l of this.listeners) l(phase);
  }

  onChange(l: (p: AgentPhase) => void): void {
    this.listeners.push(l);
    l(this.current);
  }

  assertServing(node: string): void {
    if (this.current === 'serving') return;
    throw new BerthError('AGENT_UNAVAILABLE', `berthd on ${node} is ${this.current}${this.detail ? ` (${this.detail})` : ''}; try again shortly`);
  }
}
