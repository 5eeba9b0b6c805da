import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration, parseTimeSpec, TimeSpecError } from '../../services/cli/time-spec';

const NOW = new Date('2026-05-10T12:00:00.000Z');
const at = (s: string) => parseTimeSpec(s, '--since', NOW).toISOString();

describe('command-line times', () => {
  it('reads durations ago, now and now±DURATION', () => {
    assert.equal(at('1h'), '2026-05-10T11:00:00.000Z');
    assert.equal(at('2d'), '2026-05-08T12:00:00.000Z');
    assert.equal(at('1w'), '2026-05-03T12:00:00.000Z');
    assert.equal(at('1h30m'), '2026-05-10T10:30:00.000Z');
    assert.equal(at('90s'), '2026-05-10T11:58:30.000Z');
    assert.equal(at('now'), NOW.toISOString());
    assert.equal(at('now-30m'), '2026-05-10T11:30:00.000Z');
    assert.equal(at('now+2h'), '2026-05-10T14:00:00.000Z');
    assert.equal(parseDuration('2h15m'), 8_100_000);
  });

  it('reads ISO 8601 times with and without a zone, and dates as local midnight', () => {
    assert.equal(at('2026-05-01T08:00:00Z'), '2026-05-01T08:00:00.000Z');
    assert.equal(at('2026-05-01T08:00:00+02:00'), '2026-05-01T06:00:00.000Z');
    assert.equal(at('2026-05-01T08:00Z'), '2026-05-01T08:00:00.000Z');
    assert.equal(parseTimeSpec('2026-05-01', '--since', NOW).getTime(), new Date(2026, 4, 1).getTime());
    assert.equal(parseTimeSpec('2026-05-01 08:30', '--since', NOW).getTime(), new Date(2026, 4, 1, 8, 30).getTime());
  });

  it('refuses anything else, naming the option, the value and the forms it takes', () => {
    for (const bad of ['yesterdayish', '1y', 'now-', 'now-soon', '-1h', '2026-13-45', '2026/05/01', '']) {
      assert.throws(() => parseTimeSpec(bad, '--since', NOW), (e: unknown) => e instanceof TimeSpecError
        && e.message.startsWith(`--since '${bad}'`) && /ISO 8601.*30m.*now-30m/.test(e.message), bad);
    }
  });
});
