// berthd's job parts as main.ts builds them (the container factory, the step ledger and the job
// service over them), from one set of dependencies, for tests against a real dockerd.
import { ContainerFactory, type ContainerFactoryDeps } from '../../services/agent/containers/container-factory';
import { JobService, type JobServiceDeps } from '../../services/agent/jobs/job-service';
import { StepLedger, type StepLedgerDeps } from '../../services/agent/jobs/step-ledger';
import type { JobMetrics } from '../../services/agent/metrics/agent-metrics';

export type JobPartsDeps = ContainerFactoryDeps & Omit<JobServiceDeps, 'factory' | 'ledger' | 'seal'> & Pick<StepLedgerDeps, 'usage'> & { metrics?: JobMetrics };

export function jobParts(d: JobPartsDeps): { jobs: JobService; factory: ContainerFactory; ledger: StepLedger } {
  const factory = new ContainerFactory(d);
  const ledger = new StepLedger({ table: d.table, log: d.log, usage: d.usage, metrics: d.metrics });
  return { jobs: new JobService({ ...d, factory, ledger }), factory, ledger };
}
