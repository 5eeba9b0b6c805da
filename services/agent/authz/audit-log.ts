// Every authorization decision, one JSON line each: time, user, job, action, URI, allow,
// policy, reason. Appended with O_APPEND in one write per line.
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export interface AuditRecord {
  time: string;
  node: string;
  user: string;
  job: string;
  action: string;
  method: string;
  uri: string;
  allow: boolean;
  policy: string;
  reason: string;
}

export interface AuditSink {
  write(record: AuditRecord): void;
}

export class AuditLog implements AuditSink {
  constructor(private readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
  }

  write(record: AuditRecord): void {
    appendFileSync(this.file, JSON.stringify(record) + '\n', { mode: 0o640 });
  }
}
