// berth's version: the CLI's --version, berthd's, and the label io.berth.agent.version on every container berthd makes.
export const AGENT_VERSION = '0.1.0';
