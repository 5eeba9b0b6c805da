/* Generated from services/shared/fault-class.ts by scripts/gen-hook-faults.ts; do not edit:
 * change the table there and run `npm run gen`. */
#ifndef BERTH_FAULTS_H
#define BERTH_FAULTS_H

/* a node fault's cause by berth's error code: the drain reason begins with it */
#define BERTH_FAULT_CAUSES { \
    { "NODE_DRAINED", "node drained" }, \
    { "ENGINE_UNAVAILABLE", "dockerd down" }, \
    { "ENGINE_FAILED", "dockerd error" }, \
    { "DISK_FULL", "disk full" }, \
    { "NODE_CONFIG", "node config" }, \
    { "JOB_ID_IN_USE", "stale job" }, \
    { "NOT_SERVED_ON_NODE", "steps off" }, \
    { "USER_UNKNOWN", "user unknown" }, \
    { "SITE_CREDENTIALS_INVALID", "site login" }, \
    { "AGENT_UNAVAILABLE", "berthd down" }, \
    { "TIMEOUT", "agent timeout" }, \
    { "PERMISSION_DENIED", "hook not root" }, \
    { "UNAUTHENTICATED", "hook not root" }, \
    { "INVALID_REQUEST", "bad request" }, \
}
#define BERTH_FAULT_DEFAULT_CAUSE "prolog failed"

#endif
