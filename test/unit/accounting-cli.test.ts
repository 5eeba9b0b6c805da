import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CSV_COLUMNS, csvCell } from '../../services/cli/accounting-format';
import { runAccounting } from '../../services/cli/accounting';
import type { QueryAccountingRequest } from '../../services/shared/gen/berth/v1/QueryAccountingRequest';
import { record } from './fakes/accounting-records';

const NOW = new Date('2026-05-10T12:00:00.000Z');
const q = (r: ReturnType<typeof record>) => ({ text: JSON.stringify(r), rec: r as unknown as Record<string, unknown> });

function io() {
  let out = '';
  let err = '';
  const asked: { node: string; req: QueryAccountingRequest }[] = [];
  return {
    get out() { return out; },
    get err() { return err; },
    asked,
    sinks: (nodes: Record<string, ReturnType<typeof record>[] | Error>) => ({
      out: (s: string) => void (out += s),
      err: (s: string) => void (err += s),
      now: NOW,
      query: async (node: string, req: QueryAccountingRequest) => {
        asked.push({ node, req });
        const v = nodes[node];
        if (v === undefined) throw new Error(`no agent for ${node}`);
        if (v instanceof Error) throw v;
        return v.map(q);
      },
    }),
  };
}

describe('berth accounting', () => {
  it('asks every node with the same filter and merges their records by start time', async () => {
    const t = io();
    const code = await runAccounting({ since: '2d', until: 'now-1h', job: '42', user: 'alice', nodes: 'n[1-2]', format: 'json' }, t.sinks({
      n1: [record({ NodeList: 'n1', Start: '2026-05-09T10:00:00Z' }), record({ NodeList: 'n1', RecordType: 'step', StepID: '0', Start: '2026-05-09T10:00:05Z' })],
      n2: [record({ NodeList: 'n2', Start: '2026-05-09T09:59:59Z' }), record({ NodeList: 'n2', RecordType: 'step', StepID: '1', Start: '2026-05-09T10:00:05Z' }),
        record({ NodeList: 'n2', RecordType: 'step', StepID: '0', Start: '2026-05-09T10:00:05Z' })],
    }));
    assert.equal(code, 0, t.err);
    assert.equal(t.err, '');
    assert.deepEqual(t.asked.map((a) => a.node).sort(), ['n1', 'n2']);
    assert.deepEqual(t.asked[0]!.req, { since: '2026-05-08T12:00:00.000Z', until: '2026-05-10T11:00:00.000Z', jobId: '42', user: 'alice', uid: 0, jobsOnly: false });
    const got = JSON.parse(t.out) as ReturnType<typeof record>[];
    assert.deepEqual(got.map((r) => `${r.NodeList}:${r.StepID ?? 'job'}`), ['n2:job', 'n1:job', 'n1:0', 'n2:0', 'n2:1']);
  });

  it('prints the reachable nodes and names the others on stderr with exit 3 (partial), 1 when none answered', async () => {
    const t = io();
    const code = await runAccounting({ nodes: 'n[1-3]', format: 'csv', since: '1d' }, t.sinks({ n1: [record()], n3: new Error('berthd on n3 is not reachable at /run/berth/n3/admin.sock') }));
    assert.equal(code, 3);
    assert.match(t.err, /^berth accounting: n2: no agent for n2$/m);
    assert.match(t.err, /^berth accounting: n3: berthd on n3 is not reachable/m);
    assert.match(t.err, /partial result: 2 of 3 node\(s\) could not be asked/);
    const lines = t.out.trim().split('\n');
    assert.equal(lines[0], CSV_COLUMNS.join(','));
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /^job,42,,,alice,2001,2001,physics,batch,n1,2026-05-01T10:00:00.000Z,/);
    const none = io();
    assert.equal(await runAccounting({ nodes: 'n[4-5]', format: 'json' }, none.sinks({})), 1);
    assert.equal(none.out, '[]\n');
    assert.match(none.err, /no node could be asked \(2\); no records/);
  });

  it('refuses bad input with exit 2 and what to do, asking no node', async () => {
    for (const [args, re] of [
      [{ format: 'xml' }, /--format 'xml' is not supported: use --format csv or --format json/],
      [{ since: 'yesterdayish' }, /--since 'yesterdayish' is not a time berth understands; use an ISO 8601/],
      [{ until: '2026-02-30T25:00' }, /--until '2026-02-30T25:00'/],
      [{ since: '1h', until: '2h' }, /--until .* is before --since .*swap them/],
      [{ job: 'abc' }, /--job 'abc' is not a Slurm job id/],
      [{ nodes: '' }, /--nodes '' names no node/],
    ] as const) {
      const t = io();
      const code = await runAccounting({ nodes: 'n1', ...{ format: 'csv' }, ...args }, t.sinks({ n1: [] }));
      assert.equal(code, 2, JSON.stringify(args));
      assert.match(t.err, re);
      assert.equal(t.asked.length, 0);
      assert.equal(t.out, '');
    }
  });

  it('quotes CSV cells that need it and writes arrays readably', () => {
    assert.equal(csvCell('plain'), 'plain');
    assert.equal(csvCell('a,b'), '"a,b"');
    assert.equal(csvCell('say "hi"'), '"say ""hi"""');
    assert.equal(csvCell(null), '');
    assert.equal(csvCell(['sh', '-c', 'echo a,b']), '"sh -c echo a,b"');
    assert.equal(csvCell([{ Source: '/a', Target: '/b', ReadOnly: true }, { Source: '/c', Target: '/c', ReadOnly: false }]), '/a:/b:ro /c:/c');
  });
});
