/* The LoadBalancer stage (owned by the LoadBalancer subsystem), in slot CILIUM_STAGE_LB of
 * cilium_calls while the subsystem is enabled. */
#include "lib/common.h"
#include "lib/pipeline.h"

char LICENSE[] SEC("license") = "GPL";

CILIUM_PASS_STAGE(cil_stage_lb, CILIUM_STAGE_LB)
