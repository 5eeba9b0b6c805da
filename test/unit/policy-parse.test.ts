import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parsePolicyFile } from '../../services/agent/policy/parse-policy';
import { PolicyError } from '../../services/agent/policy/policy-error';

const POLICIES = path.join(import.meta.dirname, '..', '..', 'policies');
const read = (f: string): string => readFileSync(path.join(POLICIES, f), 'utf8');

function problems(text: string, source = 'policies.jsonl'): string[] {
  try {
    parsePolicyFile(text, source);
  } catch (err) {
    assert.ok(err instanceof PolicyError, `a PolicyError, not ${String(err)}`);
    assert.equal(err.message, err.problems.join('\n'));
    return [...err.problems];
  }
  assert.fail('the policy file was accepted');
}

const ok = '{"name":"ok","users":["*"],"actions":["docker_ping"]}';

describe('policy files: the seed forms load unchanged', () => {
  it('Cray form A: allow_actions plus deny_payloads as fields that must be unset', () => {
    const [p] = parsePolicyFile(read('seed-examples/cray-form-a.json'), 'cray-form-a.json').policies;
    assert.equal(p!.name, 'policy_1');
    assert.deepEqual(p!.users, ['authclients']);
    assert.deepEqual(p!.allow.map((a) => [...a.matches]), [['container_create']]);
    assert.deepEqual(p!.unsetFields.map((f) => f.text), ['Privileged', 'CapAdd']);
    assert.equal(p!.readonly, false);
  });

  it('Cray form B: glob actions and excl_payloads', () => {
    const [p] = parsePolicyFile(read('seed-examples/cray-form-b.json'), 'cray-form-b.json').policies;
    const all = new Set(p!.allow.flatMap((a) => [...a.matches]));
    for (const a of ['docker_ping', 'docker_info', 'image_create', 'image_build', 'container_create', 'container_exec_create', 'container_archive_extract']) assert.ok(all.has(a), a);
    // the broker the seed was written for calls exec start container_exec_start: container_* covers it
    assert.ok(all.has('exec_start'));
    for (const a of ['volume_create', 'network_create', 'plugin_pull', 'swarm_init', 'session']) assert.ok(!all.has(a), a);
    assert.deepEqual(p!.unsetFields.map((f) => f.text), ['UsernsMode', 'CapAdd']);
  });

  it('authz-broker form: anchored regular expressions and readonly', () => {
    const [p] = parsePolicyFile(read('seed-examples/authz-broker.jsonl'), 'authz-broker.jsonl').policies;
    assert.deepEqual(p!.allow.flatMap((a) => [...a.matches]).sort(), ['container_create', 'container_list']);
    assert.equal(p!.readonly, false);
  });

  it('authz-broker form: one policy per line, regular expressions matching the broker names too', () => {
    const text = [
      '{"name":"policy_1","users":["alice"],"actions":[".*"]}',
      '',
      '{"name":"policy_4","users":["service_account"],"actions":["container_logs","container_top"]}',
      '{"name":"policy_5","users":["carol"],"actions":["container_.*"], "readonly":true }',
      '{"name":"policy_6","users":["dave"],"actions":["container_exec_start"]}',
    ].join('\n');
    const set = parsePolicyFile(text, 'policy.json');
    assert.deepEqual(set.policies.map((p) => p.name), ['policy_1', 'policy_4', 'policy_5', 'policy_6']);
    assert.deepEqual(set.policies.map((p) => p.origin), ['policy.json:1', 'policy.json:3', 'policy.json:4', 'policy.json:5']);
    const five = set.policies[2]!.allow[0]!.matches;
    assert.ok(five.has('exec_start'), "the broker's container_exec_start is exec_start, a container_.* action there");
    assert.ok(five.has('image_commit'), "the broker's container_commit");
    assert.deepEqual([...set.policies[3]!.allow[0]!.matches], ['exec_start']);
  });

  it('a JSON array of policies and a single pretty-printed object', () => {
    assert.equal(parsePolicyFile(`[${ok},\n${ok.replace('"ok"', '"ok2"')}]`, 'p.json').policies.length, 2);
    assert.equal(parsePolicyFile(JSON.stringify(JSON.parse(ok), null, 2), 'p.json').policies[0]!.name, 'ok');
  });

  it('the shipped hpc-default policy loads', () => {
    const [p] = parsePolicyFile(read('hpc-default.json'), 'hpc-default.json').policies;
    assert.equal(p!.name, 'hpc-default');
    assert.deepEqual(p!.users, ['*']);
    assert.ok(p!.rules.length > 40);
  });
});

describe('policy files: every mistake is pointed at', () => {
  it('names file, line, policy and key for a bad regular expression', () => {
    const text = [ok, ok.replace('"ok"', '"p2"'), '{"name":"p3","users":["bob"],"actions":["container_list","("]}'].join('\n');
    const [msg, ...rest] = problems(text);
    assert.deepEqual(rest, []);
    assert.match(msg!, /^policies\.jsonl:3: policy 'p3': actions\[1\] '\(' is not a valid regular expression: /);
  });

  it('names the index in a JSON array', () => {
    const [msg] = problems(`[${ok}, {"name":"p2","users":["*"],"actions":["container_craete"]}]`, 'p.json');
    assert.match(msg!, /^p\.json\[1\]: policy 'p2': actions\[0\] 'container_craete' is not an action berth knows; close: container_create/);
  });

  it('refuses unknown keys, suggesting the known one', () => {
    const [msg] = problems('{"name":"p","users":["*"],"Actions":["docker_ping"]}');
    assert.match(msg!, /policy 'p': unknown key 'Actions' \(did you mean 'actions'\?\)/);
  });

  it("refuses authz-broker's unanchored 'container' and '' with the spellings to use", () => {
    const [a, b] = problems('{"name":"p","users":["*"],"actions":["container",""]}');
    assert.match(a!, /actions\[0\] 'container' is not an action berth knows \(for every container action write 'container_\*'\)/);
    assert.match(b!, /actions\[1\] regular expression '' matches no action \(write '\.\*' or '\*' for every action\)/);
  });

  it('refuses a glob or expression that matches nothing', () => {
    const [a, b] = problems('{"name":"p","users":["*"],"actions":["contianer_*","imgs_(list|load)"]}');
    assert.match(a!, /actions\[0\] glob 'contianer_\*' matches no action/);
    assert.match(b!, /actions\[1\] regular expression 'imgs_\(list\|load\)' matches no action/);
  });

  it('refuses an empty user (the broker meant everyone) and a policy for nobody', () => {
    assert.match(problems('{"name":"p","users":[""],"actions":["docker_ping"]}')[0]!, /users\[0\] is empty: write '\*' for every user/);
    assert.match(problems('{"name":"p","actions":["docker_ping"]}')[0]!, /users and groups are both empty: the policy would apply to nobody/);
  });

  it('refuses duplicate keys, duplicate policy names and the reserved name berth', () => {
    assert.match(problems('{"name":"p","users":["*"],"actions":["docker_ping"],"actions":["image_build"]}')[0]!, /policy 'p': actions is given twice/);
    assert.match(problems(`${ok}\n${ok}`)[0]!, /^policies\.jsonl:2: policy 'ok': name is also the name of the policy at policies\.jsonl:1/);
    assert.match(problems('{"name":"berth","users":["*"],"actions":["docker_ping"]}')[0]!, /'berth' is the name of berth's built-in rules/);
  });

  it('refuses deny_payloads naming a field Docker does not have', () => {
    assert.match(problems('{"name":"p","users":["*"],"actions":["docker_ping"],"deny_payloads":["Privilegd"]}')[0]!, /deny_payloads\[0\] 'Privilegd' is not a field of any Docker request berth knows; close: Privileged/);
  });

  const rule = (r: string): string => `{"name":"p","users":["*"],"actions":["container_create"],"registries":["r:5000"],"payload_rules":[${r},{"field":"Image","actions":["container_create"],"registry_in":"{{registries}}"}]}`;
  const ruleProblems: [string, string, RegExp][] = [
    ['a misspelt field', '{"field":"HostConfig.Privilegd","actions":["container_create"],"deny":"nonempty"}', /payload_rules\[0\]\.field 'Privilegd' is not a field of HostConfig; close: HostConfig\.Privileged/],
    ['a list without [*] before a subfield', '{"field":"HostConfig.Devices.PathOnHost","actions":["container_create"],"one_of":"{{devices}}"}', /HostConfig\.Devices is a list: write HostConfig\.Devices\[\*\]/],
    ['no actions', '{"field":"User","equals":"x"}', /payload_rules\[0\]\.actions is required/],
    ['two conditions', '{"field":"User","actions":["container_create"],"equals":"x","deny":"present"}', /payload_rules\[0\] must have exactly one of deny, .* \(it has deny, equals\)/],
    ['an unknown placeholder', '{"field":"User","actions":["container_create"],"equals":"{{user_id}}"}', /payload_rules\[0\]\.equals \{\{user_id\}\} is not a placeholder/],
    ['a list placeholder inside text', '{"field":"User","actions":["container_create"],"one_of":"x{{devices}}"}', /payload_rules\[0\]\.one_of must be a list or one placeholder/],
    ['max_cpus on another field', '{"field":"HostConfig.Memory","actions":["container_create"],"max_cpus":"{{cpus}}"}', /max_cpus applies to a NanoCpus field/],
    ['max with a list placeholder', '{"field":"HostConfig.Memory","actions":["container_create"],"max":"{{devices}}"}', /max must be a positive number or one of/],
    ['a relative bind prefix', '{"field":"HostConfig.Binds[*]","actions":["container_create"],"bind_under":["scratch"]}', /bind_under\[0\] 'scratch' is not an absolute path/],
    ['an unknown deny mode', '{"field":"User","actions":["container_create"],"deny":"yes"}', /deny must be 'nonempty' .* or 'present'/],
    ['a query parameter in the wrong case', '{"field":"fromimage","in":"query","actions":["image_create"],"deny":"present"}', /'fromimage' is not a query parameter of image_create .*case-sensitive/],
    ['an unknown rule key', '{"field":"User","actions":["container_create"],"equal":"x"}', /unknown key 'payload_rules\[0\]\.equal' \(did you mean 'equals'\?\)/],
  ];
  for (const [what, r, re] of ruleProblems) {
    it(`refuses a payload rule with ${what}`, () => {
      const all = problems(rule(r), 'p.json');
      assert.ok(all.some((m) => re.test(m)), all.join('\n'));
      assert.ok(all.every((m) => m.startsWith("p.json: policy 'p': ")), all.join('\n'));
    });
  }

  it('refuses registries that no rule uses, and registries that are not host[:port]', () => {
    assert.match(problems('{"name":"p","users":["*"],"actions":["image_create"],"registries":["r:5000"]}')[0]!, /registries is given but no rule uses \{\{registries\}\}/);
    const all = problems('{"name":"p","users":["*"],"actions":["image_create"],"registries":["https://r:5000"],"payload_rules":[{"field":"fromImage","in":"query","actions":["image_create"],"registry_in":"{{registries}}"}]}');
    assert.match(all[0]!, /registries\[0\] 'https:\/\/r:5000' is not a registry host\[:port\]/);
  });

  it("leaves {{registries}} to the site when the policy gives none", () => {
    const [p] = parsePolicyFile('{"name":"p","users":["*"],"actions":["image_create"],"payload_rules":[{"field":"fromImage","in":"query","actions":["image_create"],"registry_in":"{{registries}}"}]}', 'p.json').policies;
    assert.equal(p!.registries, undefined);
  });

  it('reports every problem of the file at once', () => {
    const all = problems(['{"name":"a","users":["*"],"actions":["nope"]}', '{"name":"b","users":["*"],"actions":["docker_ping"],"colour":"red"}'].join('\n'));
    assert.equal(all.length, 2);
    assert.match(all[0]!, /^policies\.jsonl:1: policy 'a':/);
    assert.match(all[1]!, /^policies\.jsonl:2: policy 'b': unknown key 'colour'/);
  });

  it('points at the line of broken JSON, in JSON lines and in one document', () => {
    assert.match(problems(`${ok}\n${ok.replace('"ok"', '"b"')}\n{"name":"c",}\n`)[0]!, /^policies\.jsonl:3: not valid JSON: a key in double quotes was expected/);
    assert.match(problems('{\n  "name": "p",\n  "users": ["*"]\n  "actions": []\n}', 'p.json')[0]!, /^p\.json:4: not valid JSON: ',' or '}' was expected/);
    assert.match(problems('{"name":"p"} // comment', 'p.json')[0]!, /^p\.json:1: not valid JSON/);
  });

  it('refuses an empty file rather than deny everything by accident', () => {
    assert.match(problems('\n  \n', 'p.json')[0]!, /^p\.json: holds no policies/);
  });
});
