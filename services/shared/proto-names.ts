// Names shared by the agent and the CLI, kept apart from the loaders so that importing
// them costs nothing.
export const SERVICE_NAME = 'berth.v1.NodeAgentService';
export const MUNGE_METADATA_KEY = 'x-berth-munge';
