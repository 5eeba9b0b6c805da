// gRPC service definitions built straight from the JSON descriptor (scripts/gen-proto.mjs)
// with protobufjs/light, for the agent and the CLI alike. @grpc/proto-loader would also
// build reflection descriptors: it doubled the start-up of `berth exec` (run once per task)
// and of the hooks, and added to berthd's resident memory. The conversions are the ones the
// generated types were made for (--longs=Number --enums=String --defaults --oneofs).
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs/light.js';
import descriptor from './gen/agent-descriptor.json';

const CONVERSION: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, oneofs: true, arrays: true };

let root: protobuf.Root | undefined;

export function serviceDefinition(fullName: string): grpc.ServiceDefinition {
  root ??= protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
  const service = root.lookupService(fullName);
  const def: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const req = method.resolvedRequestType!;
    const res = method.resolvedResponseType!;
    def[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: Boolean(method.requestStream),
      responseStream: Boolean(method.responseStream),
      requestSerialize: (value: object) => Buffer.from(req.encode(req.fromObject(value)).finish()),
      requestDeserialize: (bytes: Buffer) => req.toObject(req.decode(bytes), CONVERSION),
      responseSerialize: (value: object) => Buffer.from(res.encode(res.fromObject(value)).finish()),
      responseDeserialize: (bytes: Buffer) => res.toObject(res.decode(bytes), CONVERSION),
      originalName: method.name[0]!.toLowerCase() + method.name.slice(1),
    };
  }
  return def as grpc.ServiceDefinition;
}
