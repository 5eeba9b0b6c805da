// gRPC server reflection (grpc.reflection.v1 and v1alpha) for berth.v1 and grpc.health.v1, so
// that grpcurl can list and call the API on any of berthd's listeners without .proto files.
// The file descriptors are made at build time (scripts/gen-proto.mjs).
import type * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import descriptors from '../../shared/gen/reflection-descriptors.json';

let service: ReflectionService | undefined;

export function addReflection(server: grpc.Server): void {
  service ??= new ReflectionService({
    // @grpc/reflection reads only the fileDescriptorProtos of each entry
    'berth.v1.files': { fileDescriptorProtos: descriptors.files.map((b) => Buffer.from(b, 'base64')) },
  } as unknown as ConstructorParameters<typeof ReflectionService>[0]);
  service.addToServer(server);
}
