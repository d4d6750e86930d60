/* The Policy stage (owned by the Policy subsystem), in slot CILIUM_STAGE_POLICY of
 * cilium_calls while the subsystem is enabled. */
#include "lib/common.h"
#include "lib/pipeline.h"

char LICENSE[] SEC("license") = "GPL";

CILIUM_PASS_STAGE(cil_stage_policy, CILIUM_STAGE_POLICY)
