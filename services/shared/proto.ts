// Loads the berth.v1 API from the JSON descriptor made by scripts/gen-proto.mjs.
// The options must match the ones given to proto-loader-gen-types there.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import descriptor from './gen/agent-descriptor.json';
import type { ProtoGrpcType } from './gen/agent';

export const PROTO_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let cached: ProtoGrpcType | undefined;

export function loadAgentApi(): ProtoGrpcType {
  cached ??= grpc.loadPackageDefinition(
    protoLoader.fromJSON(descriptor as Parameters<typeof protoLoader.fromJSON>[0], PROTO_OPTIONS),
  ) as unknown as ProtoGrpcType;
  return cached;
}

export const SERVICE_NAME = 'berth.v1.NodeAgentService';
export const MUNGE_METADATA_KEY = 'x-berth-munge';
