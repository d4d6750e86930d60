/* The HostFirewall stage (owned by the HostFirewall subsystem), in slot CILIUM_STAGE_HOSTFW of
 * cilium_calls while the subsystem is enabled. */
#include "lib/common.h"
#include "lib/pipeline.h"

char LICENSE[] SEC("license") = "GPL";

CILIUM_PASS_STAGE(cil_stage_hostfw, CILIUM_STAGE_HOSTFW)
