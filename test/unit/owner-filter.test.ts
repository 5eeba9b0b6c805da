// Listings of a job user show their job's own containers: the AuthZ plugin requires the job's
// label filter, and the job's Docker endpoint adds it (and the labels on what the user creates).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rewriteRequest } from '../../services/agent/authz/job-docker-endpoint';
import { addLabelFilter, ownerFilterProblem } from '../../services/agent/authz/owner-filter';

const enc = (f: unknown): string => encodeURIComponent(JSON.stringify(f));

describe('owner filter: what a listing must ask for', () => {
  const ok: [string, string][] = [
    ['the current form', `/v1.41/containers/json?all=1&filters=${enc({ label: { 'io.berth.job.id=42': true } })}`],
    ['the legacy form', `/v1.41/containers/json?filters=${enc({ label: ['io.berth.job.id=42'] })}`],
    ['with more filters (they only narrow)', `/v1.41/events?filters=${enc({ label: { 'io.berth.job.id=42': true, x: true }, type: { container: true } })}`],
  ];
  for (const [what, uri] of ok) it(`accepts ${what}`, () => assert.equal(ownerFilterProblem(uri, '42'), undefined));

  const refused: [string, string, RegExp][] = [
    ['no filters', '/v1.41/containers/json?all=1', /filter by the label io\.berth\.job\.id=42 \(docker ps --filter label=io\.berth\.job\.id=42\)/],
    ["another job's label", `/containers/json?filters=${enc({ label: { 'io.berth.job.id=43': true } })}`, /io\.berth\.job\.id=42/],
    ['the label switched off', `/containers/json?filters=${enc({ label: { 'io.berth.job.id=42': false } })}`, /filter by the label/],
    ['a key only (every job)', `/containers/json?filters=${enc({ label: { 'io.berth.job.id': true } })}`, /filter by the label/],
    ['a later duplicate that drops it (last key wins in Go and here)', `/containers/json?filters=${encodeURIComponent('{"label":{"io.berth.job.id=42":true},"label":{}}')}`, /filter by the label/],
    ['filters twice', `/containers/json?filters=${enc({ label: ['io.berth.job.id=42'] })}&filters=${enc({})}`, /more than once/],
    ['filters that are not JSON', '/containers/json?filters=%7Bx', /not JSON/],
  ];
  for (const [what, uri, why] of refused) it(`refuses ${what}`, () => assert.match(ownerFilterProblem(uri, '42') ?? '', why));
});

describe("the job's Docker endpoint", () => {
  it('adds the label filter to listings, keeping the filters given', () => {
    const u = addLabelFilter(`/v1.41/containers/json?all=1&filters=${enc({ status: ['running'] })}`, 'io.berth.job.id=42')!;
    assert.equal(ownerFilterProblem(u, '42'), undefined);
    const f = JSON.parse(new URLSearchParams(u.split('?')[1]).get('filters')!) as Record<string, Record<string, boolean>>;
    assert.deepEqual(f, { status: { running: true }, label: { 'io.berth.job.id=42': true } });
    assert.equal(new URLSearchParams(u.split('?')[1]).get('all'), '1');
    assert.equal(ownerFilterProblem(rewriteRequest('GET', '/v1.41/events', '42', undefined).url, '42'), undefined);
  });

  it("labels what the user creates with the job, over the user's own io.berth labels", () => {
    const r = rewriteRequest('POST', '/v1.41/containers/create?name=x', '42', Buffer.from(JSON.stringify({ Image: 'i', Labels: { a: 'b', 'io.berth.job.id': '7' } })));
    assert.deepEqual((JSON.parse(r.body!.toString()) as { Labels: unknown }).Labels, { a: 'b', 'io.berth.job.id': '42', 'io.berth.role': 'user' });
    const v = rewriteRequest('POST', '/volumes/create', '42', Buffer.from('{"Name":"v"}'));
    assert.deepEqual(JSON.parse(v.body!.toString()), { Name: 'v', Labels: { 'io.berth.job.id': '42', 'io.berth.role': 'user' } });
  });

  it('passes on what it cannot read, for the AuthZ plugin to refuse', () => {
    const body = Buffer.from('{"Image":');
    assert.equal(rewriteRequest('POST', '/containers/create', '42', body).body, body);
    assert.equal(rewriteRequest('GET', '/containers/abc/json', '42', undefined).url, '/containers/abc/json');
  });
});
