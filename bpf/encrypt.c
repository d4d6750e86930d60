/* The Encryption stage (owned by the Encryption subsystem), in slot CILIUM_STAGE_ENCRYPT of
 * cilium_calls while the subsystem is enabled. */
#include "lib/common.h"
#include "lib/pipeline.h"

char LICENSE[] SEC("license") = "GPL";

CILIUM_PASS_STAGE(cil_stage_encrypt, CILIUM_STAGE_ENCRYPT)
