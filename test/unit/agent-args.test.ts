// berthd's command line (services/agent/agent-args.ts): the flags that override the config
// file, --help and --version, and a clear refusal of what it does not know.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAgentArgs } from '../../services/agent/agent-args';

describe("berthd's command line", () => {
  it('reads --config and the overriding flags, in either form', () => {
    assert.deepEqual(parseAgentArgs(['--config', '/etc/berth/berthd.json', '--node=n2', '--log-level', 'debug', '--run-dir', '/run/b']), {
      args: { config: '/etc/berth/berthd.json', node: 'n2', 'log-level': 'debug', 'run-dir': '/run/b' },
    });
    assert.deepEqual(parseAgentArgs([]), { args: {} });
  });

  it('answers --help and --version', () => {
    assert.deepEqual(parseAgentArgs(['--help']), { help: true });
    assert.deepEqual(parseAgentArgs(['--version']), { version: true });
  });

  it('refuses an unknown flag, a stray argument and a log level it does not have, with the usage', () => {
    assert.throws(() => parseAgentArgs(['--confg', 'x']), /Unknown option '--confg'[\s\S]*berthd --config FILE/);
    assert.throws(() => parseAgentArgs(['berthd.json']), /positional argument[\s\S]*--config/);
    assert.throws(() => parseAgentArgs(['--log-level', 'loud']), /--log-level loud: give one of error, warn, info, debug/);
    assert.throws(() => parseAgentArgs(['--config']), /argument missing/);
  });
});
