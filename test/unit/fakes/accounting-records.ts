// Accounting records for tests: a complete job record, with the fields a test names changed.
import type { AccountingRecord } from '../../../services/agent/accounting/accounting-record';

export function record(over: Partial<AccountingRecord> = {}): AccountingRecord {
  return {
    Format: 2, RecordType: 'job', JobID: '42', StepID: null, TaskID: null,
    User: 'alice', UID: 2001, GID: 2001, Account: 'physics', Partition: 'batch', NodeList: 'n1',
    Image: '127.0.0.1:5000/berth/demo:1.0', ImageDigest: `127.0.0.1:5000/berth/demo@sha256:${'a'.repeat(64)}`, Registry: '127.0.0.1:5000',
    ContainerID: 'c'.repeat(64), Mounts: [{ Source: '/home/alice/run', Target: '/home/alice/run', ReadOnly: false }], Devices: [], GPUs: [], CPUSet: '0-1',
    Pulled: true, PullSeconds: 0.25, PullBytes: 1_048_576, StartLatencySeconds: 0.18,
    Start: '2026-05-01T10:00:00.000Z', End: '2026-05-01T11:00:00.000Z', ElapsedSeconds: 3600,
    State: 'COMPLETED', ExitCode: '0:0', Reason: '', TotalCPUSeconds: 12.5, MaxRSSBytes: 104_857_600, UsageSource: 'cgroup-v1', Argv: [], SettledLate: false,
    ...over,
  };
}
