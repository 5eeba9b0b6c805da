/*
 * What the files of berth-hook share (berth-hook.c has the overview): main and the hand-over
 * to the Node hook (berth-hook.c), the hook's environment (berth_hook_env.c), the
 * ContainerOptions read from it (berth_hook_options.c), what a failure does and which of
 * berthd's answers the Node hook retries (berth_hook_faults.c), the step hooks
 * (berth_hook_step.c), and the job's prolog and epilog (berth_hook_job.c, with the job's
 * allocation on this node from berth_hook_allocation.c).
 */
#ifndef BERTH_HOOK_H
#define BERTH_HOOK_H

#include <stddef.h>
#include <stdint.h>
#include "berth_grpc.h"
#include "berth_pb.h"

#define SERVICE "/berth.v1.NodeAgentService/"

/* berth-hook.c: the hook asked for, the Node command, and what the hook runs for */
extern const char *kind;
extern const char *berth;
extern char node[256];    /* by target() */
extern const char *job_id;

/* Hands the hook to `berth hook KIND` with this environment; returns only when it cannot. */
int fallback(void);

/* berth_hook_env.c */
const char *env_or(const char *name, const char *dflt);
int trim(const char *s, size_t n, char *out, size_t size);
int trim_env(const char *name, char *out, size_t size);
int uint32_env(const char *name, uint64_t *v);
int matches(const char *s, int step);
int target(char *socket_path, size_t size);
long timeout_env(const char *name, long default_ms);

/* berth_hook_options.c */
int container_options(struct pb_buf *o, const char *prefix);

/* berth_hook_faults.c */
void drain_reason(const char *code, const char *reason, char *out, size_t size);
void drain(const char *node, const char *job, const char *reason, char *problem, size_t size);
int unreachable_details(const char *d);
int retryable(const struct grpc_result *r);
int no_retry(void);
const char *status_name(int code);
/* What a hook does with the call's result R, as the Node hook does (hook-retry.ts,
 * describeGrpcError, hookFailure): ANSWER_OK (berthd said OK), ANSWER_HAND_OVER (give it to
 * `berth hook`, which asks again or waits), or ANSWER_FAILED with the reason in REASON, the
 * berth code in *CODE and *JOB_FAULT set when berthd named it the job's fault. */
enum answer { ANSWER_OK, ANSWER_HAND_OVER, ANSWER_FAILED };
enum answer judge_answer(const struct grpc_result *r, const char *socket_path, char *reason, size_t size, const char **code, int *job_fault);

/* berth_hook_step.c: step-prolog (PROLOG 1) or step-epilog, its exit status */
int step_hook(int prolog);

/* berth_hook_allocation.c */
int num_env(const char *name, double *v);
int allocation(double *cpus, double *memory_bytes);

/* berth_hook_job.c */
int no_container_image(void);
int has_step_files(void);
int job_prologue(void);
int job_epilogue(void);

#endif
