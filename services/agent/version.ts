// The agent version recorded on every container berthd makes (label io.berth.agent.version).
export const AGENT_VERSION = '0.1.0';
