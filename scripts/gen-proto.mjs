// Generates TypeScript types for the berth API and grpc.health.v1 (pure JS, no protoc) and a JSON
// descriptor that the bundles embed, so that nothing parses .proto files at run time.
// The conversion options here must match services/shared/service-definition.ts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const out = path.join(root, 'services/shared/gen');
const protos = ['proto/berth/v1/agent.proto', 'proto/grpc/health/v1/health.proto'];
mkdirSync(out, { recursive: true });

const genTypes = require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
execFileSync(process.execPath, [genTypes, '--longs=Number', '--enums=String', '--defaults', '--oneofs',
  '--grpcLib=@grpc/grpc-js', '--includeComments', `--outDir=${out}`, ...protos], { cwd: root, stdio: 'inherit' });

const protobuf = require('protobufjs');
const pbRoot = new protobuf.Root();
// camelCase field names, as proto-loader produces with keepCase: false (PROTO_OPTIONS)
pbRoot.loadSync(protos.map((p) => path.join(root, p)), { keepCase: false });
writeFileSync(path.join(out, 'agent-descriptor.json'), JSON.stringify(pbRoot.toJSON()));
// the files' FileDescriptorProtos for server reflection (@grpc/reflection): grpcurl lists and
// calls the API without .proto files
const protoLoader = require('@grpc/proto-loader');
const pkgDef = protoLoader.loadSync(protos.map((p) => path.join(root, p)), { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
const files = new Map();
for (const def of Object.values(pkgDef)) {
  for (const bin of def.fileDescriptorProtos ?? []) files.set(Buffer.from(bin).toString('base64'), true);
}
writeFileSync(path.join(out, 'reflection-descriptors.json'), JSON.stringify({ files: [...files.keys()] }));
console.log(`gen-proto: types and descriptor written to ${path.relative(root, out)}`);
