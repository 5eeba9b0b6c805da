// gRPC server reflection (grpc.reflection.v1 and v1alpha) for berth.v1 and grpc.health.v1, so
// that grpcurl can list and call the API on any of berthd's listeners without .proto files.
// The file descriptors are made at build time (scripts/gen-proto.mjs).
//
// @grpc/reflection parses its reflection.proto files (@grpc/proto-loader, the full protobufjs)
// and indexes berth's descriptors when it is set up: 3 MiB of berthd's heap for as long as it
// runs, for a service an operator calls now and then. So the two services are registered with
// stand-ins that set it up on their first call: the stand-ins' paths are the real ones, and
// their message codecs and handlers hand over to the real ones once loaded.
import { createRequire } from 'node:module';
import type * as grpc from '@grpc/grpc-js';
import type { ReflectionService } from '@grpc/reflection';
import descriptors from '../../shared/gen/reflection-descriptors.json';

const VERSIONS = ['v1', 'v1alpha'] as const;
type Version = typeof VERSIONS[number];
const METHOD = 'ServerReflectionInfo';
const pathOf = (v: Version): string => `/grpc.reflection.${v}.ServerReflection/${METHOD}`;

interface Loaded {
  method: grpc.MethodDefinition<unknown, unknown>;
  handler: grpc.handleBidiStreamingCall<unknown, unknown>;
}

let loaded: Map<string, Loaded> | undefined;

/** @grpc/reflection's own services (what its addToServer would add), set up once */
function real(path: string): Loaded {
  if (!loaded) {
    // synchronous: grpc-js may ask for a codec before the handler runs. The free require is the
    // one esbuild bundles (the bundle's banner defines it); from the sources (tsx), createRequire.
    const { ReflectionService: Service } = (typeof require === 'function' ? require('@grpc/reflection') : createRequire(import.meta.url)('@grpc/reflection')) as { ReflectionService: typeof ReflectionService };
    const service = new Service({
      // @grpc/reflection reads only the fileDescriptorProtos of each entry
      'berth.v1.files': { fileDescriptorProtos: descriptors.files.map((b) => Buffer.from(b, 'base64')) },
    } as unknown as ConstructorParameters<typeof ReflectionService>[0]);
    const found = new Map<string, Loaded>();
    const collector = {
      addService(definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void {
        for (const [name, method] of Object.entries(definition)) {
          found.set(method.path, { method: method as grpc.MethodDefinition<unknown, unknown>, handler: impl[name] as grpc.handleBidiStreamingCall<unknown, unknown> });
        }
      },
    };
    service.addToServer(collector as unknown as grpc.Server);
    for (const v of VERSIONS) if (!found.has(pathOf(v))) throw new Error(`@grpc/reflection no longer serves ${pathOf(v)}; update services/agent/server/reflection.ts`);
    loaded = found;
  }
  return loaded.get(path)!;
}

export function addReflection(server: grpc.Server): void {
  for (const v of VERSIONS) {
    const path = pathOf(v);
    const definition: grpc.ServiceDefinition = {
      [METHOD]: {
        path,
        requestStream: true,
        responseStream: true,
        originalName: 'serverReflectionInfo',
        requestSerialize: (m: unknown) => real(path).method.requestSerialize(m),
        requestDeserialize: (b: Buffer) => real(path).method.requestDeserialize(b),
        responseSerialize: (m: unknown) => real(path).method.responseSerialize(m),
        responseDeserialize: (b: Buffer) => real(path).method.responseDeserialize(b),
      },
    };
    server.addService(definition, { [METHOD]: (call: grpc.ServerDuplexStream<unknown, unknown>) => real(path).handler(call) });
  }
}
