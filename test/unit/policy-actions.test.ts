import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ACTIONS, actionInfo, mapAction, parseQuery } from '../../services/agent/docker-request/actions';

describe('policy: Docker API requests as actions', () => {
  const mapped: [string, string, string, Record<string, unknown>?][] = [
    ['GET', '/_ping', 'docker_ping', { readonly: true }],
    ['HEAD', '/v1.45/_ping', 'docker_ping', { readonly: true, apiVersion: '1.45' }],
    ['GET', '/v1.41/version', 'docker_version'],
    ['GET', '/info', 'docker_info'],
    ['GET', '/events?since=1', 'docker_events'],
    ['GET', '/system/df', 'docker_system_df'],
    ['POST', '/auth', 'docker_auth'],
    ['GET', '/v1.41/containers/json?all=1', 'container_list', { readonly: true }],
    ['POST', '/v1.41/containers/create?name=x', 'container_create', { readonly: false, apiVersion: '1.41' }],
    ['POST', '/containers/create', 'container_create'],
    ['GET', '/containers/abc123/json', 'container_inspect', { containerId: 'abc123' }],
    ['GET', '/containers/create/json', 'container_inspect', { containerId: 'create' }],
    ['GET', '/containers/abc/logs?follow=1', 'container_logs', { containerId: 'abc' }],
    ['GET', '/containers/abc/top', 'container_top'],
    ['GET', '/containers/abc/changes', 'container_changes'],
    ['GET', '/containers/abc/export', 'container_export'],
    ['GET', '/containers/abc/stats', 'container_stats'],
    ['POST', '/containers/abc/resize?h=1&w=2', 'container_resize'],
    ['POST', '/containers/abc/start', 'container_start', { containerId: 'abc' }],
    ['POST', '/containers/abc/stop', 'container_stop'],
    ['POST', '/containers/abc/restart', 'container_restart'],
    ['POST', '/containers/abc/kill?signal=KILL', 'container_kill'],
    ['POST', '/containers/abc/update', 'container_update'],
    ['POST', '/containers/abc/rename?name=y', 'container_rename'],
    ['POST', '/containers/abc/pause', 'container_pause'],
    ['POST', '/containers/abc/unpause', 'container_unpause'],
    ['POST', '/containers/abc/attach?stream=1', 'container_attach'],
    ['GET', '/containers/abc/attach/ws', 'container_attach_ws', { readonly: false }],
    ['POST', '/containers/abc/wait', 'container_wait'],
    ['DELETE', '/containers/abc?force=1', 'container_delete', { containerId: 'abc' }],
    ['HEAD', '/containers/abc/archive?path=/etc', 'container_archive_info', { readonly: true }],
    ['GET', '/containers/abc/archive?path=/etc', 'container_archive'],
    ['PUT', '/containers/abc/archive?path=/', 'container_archive_extract', { readonly: false }],
    ['POST', '/containers/abc/exec', 'container_exec_create', { containerId: 'abc' }],
    ['POST', '/exec/e1/start', 'exec_start', { execId: 'e1' }],
    ['POST', '/exec/e1/resize', 'exec_resize', { execId: 'e1' }],
    ['GET', '/exec/e1/json', 'exec_inspect', { execId: 'e1' }],
    ['POST', '/containers/prune', 'container_prune'],
    ['GET', '/images/json', 'image_list'],
    ['POST', '/build?t=x', 'image_build'],
    ['POST', '/images/create?fromImage=reg:5000/a/b&tag=1', 'image_create'],
    ['GET', '/images/reg:5000/team/app:1.4/json', 'image_inspect', { imageName: 'reg:5000/team/app:1.4' }],
    ['GET', '/images/team/app/history', 'image_history', { imageName: 'team/app' }],
    ['POST', '/images/team/app/push?tag=1', 'image_push', { imageName: 'team/app' }],
    ['POST', '/images/app/tag?repo=x', 'image_tag', { imageName: 'app' }],
    ['DELETE', '/images/reg:5000/a/b:1', 'image_delete', { imageName: 'reg:5000/a/b:1' }],
    ['GET', '/images/search?term=x', 'image_search'],
    ['POST', '/images/prune', 'image_prune'],
    ['POST', '/commit?container=abc', 'image_commit'],
    ['GET', '/images/get?names=a', 'image_get'],
    ['GET', '/images/a/b/get', 'image_get', { imageName: 'a/b' }],
    ['POST', '/images/load', 'image_load'],
    ['GET', '/networks', 'network_list'],
    ['POST', '/networks/create', 'network_create'],
    ['POST', '/networks/n1/connect', 'network_connect'],
    ['DELETE', '/networks/n1', 'network_delete'],
    ['GET', '/volumes', 'volume_list'],
    ['POST', '/volumes/create', 'volume_create'],
    ['GET', '/volumes/v1', 'volume_inspect'],
    ['DELETE', '/volumes/v1', 'volume_delete'],
    ['POST', '/volumes/prune', 'volume_prune'],
    ['POST', '/swarm/init', 'swarm_init'],
    ['GET', '/nodes', 'node_list'],
    ['POST', '/services/create', 'service_create'],
    ['GET', '/tasks', 'task_list'],
    ['POST', '/secrets/create', 'secret_create'],
    ['POST', '/configs/create', 'config_create'],
    ['POST', '/plugins/pull?remote=x', 'plugin_pull'],
    ['POST', '/plugins/vieux/sshfs/enable', 'plugin_enable'],
    ['GET', '/distribution/reg:5000/a/json', 'distribution_inspect'],
    ['POST', '/session', 'session'],
    ['POST', '/grpc', 'grpc'],
    // dockerd decodes the path once before routing: so does berth
    ['POST', '/containers%2Fcreate', 'container_create'],
    ['POST', '/v1.41/containers/cre%61te', 'container_create'],
  ];
  for (const [method, uri, action, extra] of mapped) {
    it(`${method} ${uri} is ${action}`, () => {
      const m = mapAction(method, uri);
      assert.ok(m, 'mapped');
      assert.equal(m.action, action);
      for (const [k, v] of Object.entries(extra ?? {})) assert.equal(m[k as keyof typeof m], v, k);
    });
  }

  const refused: [string, string, string][] = [
    ['POST', '/containers/../images/create', 'a .. segment'],
    ['POST', '/containers/%2e%2e/images/create', 'an encoded .. segment'],
    ['POST', '/containers/%2E%2E/images/create', 'an upper-case encoded .. segment'],
    ['POST', '/containers/./create', 'a . segment'],
    ['POST', '/containers//create', 'a double slash'],
    ['POST', '//containers/create', 'a leading double slash'],
    ['POST', '/containers%252Fcreate', 'a double-encoded slash (%2F left after one decode)'],
    ['POST', '/containers/abc%252E%252E/start', 'a double-encoded dot'],
    ['POST', '/containers/create%00', 'a NUL'],
    ['POST', '/containers/a%0a/start', 'a newline'],
    ['POST', '/containers/%zz/start', 'a malformed escape'],
    ['POST', '/containers/%c0%ae%c0%ae/start', 'an overlong UTF-8 dot'],
    ['POST', 'http://docker/containers/create', 'an absolute URI'],
    ['POST', '/v1.41/containers/create#x', 'a fragment'],
    ['POST', '/Containers/create', 'a path in the wrong case'],
    ['post', '/containers/create', 'a method in the wrong case'],
    ['GET', '/containers/create', 'the wrong method'],
    ['HEAD', '/containers/json', 'HEAD where dockerd has only GET'],
    ['POST', '/containers/a/b/start', 'a container id with a slash'],
    ['DELETE', '/containers/abc/', 'a trailing slash on an id'],
    ['GET', '/v1.41', 'a bare version'],
    ['GET', '/v1.41.2/info', 'a malformed version'],
    ['POST', '/containers/create/extra', 'an unknown endpoint'],
    ['GET', '/debug/pprof/', 'an endpoint berth does not know'],
    ['POST', '/containers/abc\\..\\start', 'backslashes'],
  ];
  for (const [method, uri, why] of refused) {
    it(`refuses ${method} ${uri} (${why})`, () => {
      assert.equal(mapAction(method, uri), undefined);
    });
  }

  it('strips the query before matching, so query text cannot change the action', () => {
    assert.equal(mapAction('POST', '/images/create?x=/../../build')?.action, 'image_create');
    assert.equal(mapAction('POST', '/containers/abc/start?/../../exec')?.action, 'container_start');
  });

  it('knows authz-broker and berth aliases as the same action', () => {
    assert.equal(actionInfo('container_exec_start')?.name, 'exec_start');
    assert.equal(actionInfo('exec_create')?.name, 'container_exec_create');
    assert.equal(actionInfo('container_commit')?.name, 'image_commit');
    assert.equal(actionInfo('images_load')?.name, 'image_load');
    assert.equal(actionInfo('no_such_action'), undefined);
  });

  it('marks exactly the GET and HEAD actions read-only, except the websocket attach', () => {
    const ro = [...ACTIONS.values()].filter((a) => a.readonly).map((a) => a.name);
    assert.ok(ro.includes('container_list') && ro.includes('docker_ping') && ro.includes('container_archive_info'));
    assert.ok(!ro.includes('container_create') && !ro.includes('container_attach_ws') && !ro.includes('container_archive_extract'));
  });

  it('reads a query as dockerd does: every value kept in order, + is a space, decoded once', () => {
    const q = parseQuery('/images/create?fromImage=good%2Fa&fromImage=evil&tag=a+b&x=%252F')!;
    assert.deepEqual(q.fromImage, ['good/a', 'evil']);
    assert.deepEqual(q.tag, ['a b']);
    assert.deepEqual(q.x, ['%2F']);
    assert.equal(parseQuery('/x?a=1;b=2'), undefined);
    assert.equal(parseQuery('/x?a=%zz'), undefined);
    assert.deepEqual({ ...parseQuery('/x') }, {});
  });
});
