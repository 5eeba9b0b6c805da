// Splits Docker's multiplexed attach stream (8-byte header: stream type, 3 zero bytes,
// big-endian length) into stdout and stderr chunks.
export type Sink = (chunk: Buffer) => void;

export class Demuxer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly stdout: Sink, private readonly stderr: Sink) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const type = this.pending[0];
      const payload = this.pending.subarray(8, 8 + size);
      this.pending = this.pending.subarray(8 + size);
      if (type === 2) this.stderr(payload);
      else this.stdout(payload);
    }
  }
}
