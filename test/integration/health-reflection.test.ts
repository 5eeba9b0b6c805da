// grpc.health.v1 and server reflection on a real berthd of the test's own (fr1, no authz):
// a reflection client (what grpcurl does: list services, fetch the file of a symbol, then call
// a method built from it) on the admin socket; health SERVING while an admin drain is on.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import descriptorExt from 'protobufjs/ext/descriptor/index.js';
import { serviceDefinition } from '../../services/shared/service-definition';
import { type OwnAgents, startOwnAgents } from '../support/own-agents';

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');

interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorMessage: string };
}

function reflect(socket: string, request: object): Promise<ReflectionResponse> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(REFLECTION_PROTO, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(`unix://${socket}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const call = (client as unknown as { serverReflectionInfo: () => grpc.ClientDuplexStream<object, ReflectionResponse> }).serverReflectionInfo();
    call.on('data', (r: ReflectionResponse) => { resolve(r); call.end(); client.close(); });
    call.on('error', reject);
    call.write(request);
  });
}

describe('health and reflection on a real agent', { timeout: 60_000 }, () => {
  let agents: OwnAgents;
  let admin: string;

  before(async () => {
    agents = await startOwnAgents(['fr1']);
    admin = path.join(agents.runDir, 'fr1', 'admin.sock');
  });
  after(async () => {
    await agents?.stop();
  });

  it('lists the berth and health services, and gives a file from which GetStatus can be called', async () => {
    const list = await reflect(admin, { listServices: '' });
    const names = list.listServicesResponse!.service.map((s) => s.name);
    assert.ok(names.includes('berth.v1.NodeAgentService'), names.join(', '));
    assert.ok(names.includes('grpc.health.v1.Health'), names.join(', '));

    const file = await reflect(admin, { fileContainingSymbol: 'berth.v1.NodeAgentService' });
    assert.equal(file.errorResponse, undefined);
    const set = { file: file.fileDescriptorResponse!.fileDescriptorProto.map((b) => descriptorExt.FileDescriptorProto.decode(b)) };
    const root = (protobuf.Root as unknown as { fromDescriptor: (d: object) => protobuf.Root }).fromDescriptor(descriptorExt.FileDescriptorSet.fromObject(set));
    const svc = root.lookupService('berth.v1.NodeAgentService');
    assert.ok(svc.methods.GetStatus && svc.methods.SetDrain && svc.methods.ListContainers, Object.keys(svc.methods).join(', '));
    const req = root.lookupType('berth.v1.GetStatusRequest');
    const res = root.lookupType('berth.v1.GetStatusResponse');
    const client = new grpc.Client(`unix://${admin}`, grpc.credentials.createInsecure());
    try {
      const got = await new Promise<Record<string, unknown>>((resolve, reject) => {
        client.makeUnaryRequest('/berth.v1.NodeAgentService/GetStatus', (v: object) => Buffer.from(req.encode(req.fromObject(v)).finish()),
          (b: Buffer) => res.toObject(res.decode(b), { enums: String, defaults: true }), {}, (err, v) => (err ? reject(err) : resolve(v!)));
      });
      assert.equal(got.node, 'fr1');
      assert.equal(got.state, 'AGENT_STATE_SERVING');
    } finally {
      client.close();
    }
  });

  it('keeps health SERVING while an admin drain is on: running jobs are still served', async () => {
    const Health = grpc.makeGenericClientConstructor(serviceDefinition('grpc.health.v1.Health'), 'Health');
    const check = async (service: string): Promise<string> => {
      const c = new Health(`unix://${admin}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Check: (r: object, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void) => void };
      try {
        return await new Promise((resolve, reject) => c.Check({ service }, (e, r) => (e ? reject(e) : resolve(r!.status))));
      } finally {
        c.close();
      }
    };
    const Agent = grpc.makeGenericClientConstructor(serviceDefinition('berth.v1.NodeAgentService'), 'A');
    const a = new Agent(`unix://${admin}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { SetDrain: (r: object, cb: (e: grpc.ServiceError | null, r?: { drain: { drained: boolean } }) => void) => void };
    try {
      const set = await new Promise<{ drain: { drained: boolean } }>((resolve, reject) => a.SetDrain({ drain: true, reason: 'health test' }, (e, r) => (e ? reject(e) : resolve(r!))));
      assert.equal(set.drain.drained, true);
      assert.equal(await check('berth.v1.NodeAgentService'), 'SERVING');
      assert.equal(await check(''), 'SERVING');
      await new Promise((resolve, reject) => a.SetDrain({ drain: false }, (e, r) => (e ? reject(e) : resolve(r))));
    } finally {
      a.close();
    }
  });
});
