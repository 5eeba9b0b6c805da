// grpc.health.v1 for berthd: Check and Watch over a status per service name ('' = the
// whole agent), driven by the agent's lifecycle.
import * as grpc from '@grpc/grpc-js';
import type { HealthCheckRequest__Output } from '../../shared/gen/grpc/health/v1/HealthCheckRequest';
import type { HealthCheckResponse, _grpc_health_v1_HealthCheckResponse_ServingStatus as ServingStatus } from '../../shared/gen/grpc/health/v1/HealthCheckResponse';
import type { HealthHandlers } from '../../shared/gen/grpc/health/v1/Health';
import { serviceDefinition } from '../../shared/service-definition';

export type HealthStatus = 'SERVING' | 'NOT_SERVING';

export class HealthService {
  private readonly statuses = new Map<string, HealthStatus>();
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<HealthCheckRequest__Output, HealthCheckResponse> }>();

  constructor(initial: Record<string, HealthStatus>) {
    for (const [k, v] of Object.entries(initial)) this.statuses.set(k, v);
  }

  setStatus(service: string, status: HealthStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers) if (w.service === service) w.call.write({ status });
  }

  private statusOf(service: string): ServingStatus {
    return this.statuses.get(service) ?? 'SERVICE_UNKNOWN';
  }

  addToServer(server: grpc.Server): void {
    const handlers: HealthHandlers = {
      Check: (call, callback) => {
        const st = this.statusOf(call.request.service);
        if (st === 'SERVICE_UNKNOWN') return callback({ code: grpc.status.NOT_FOUND, details: `unknown service '${call.request.service}'` });
        callback(null, { status: st });
      },
      Watch: (call) => {
        const w = { service: call.request.service, call };
        this.watchers.add(w);
        call.write({ status: this.statusOf(w.service) });
        call.on('cancelled', () => this.watchers.delete(w));
      },
    };
    server.addService(serviceDefinition('grpc.health.v1.Health'), handlers as unknown as grpc.UntypedServiceImplementation);
  }
}
